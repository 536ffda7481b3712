"""`genfactory`: train, serve, pull, generate, augment, baseline, evaluate, score, jobs, models, demo.

The parser is in `parser`, the commands in `commands` (models and their lifecycle) and `datasets`
(data files); `main` runs one and maps the errors users can act on to one line and an exit code.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from gen_factory.cli.parser import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from gen_factory.client import ApiError
    from gen_factory.data.validate import DataValidationError
    from gen_factory.registry import ModelNotFound, RegistryUnavailable
    from gen_factory.registry.runs import RunError
    from gen_factory.services.jobs import ClusterUnreachable, JobNotFound

    try:
        return args.func(args) or 0
    except (DataValidationError, ApiError, ModelNotFound, JobNotFound) as err:  # the input's fault
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (RunError, RegistryUnavailable, ClusterUnreachable) as err:  # not the input's: says how to go on
        print(f"error: {err}", file=sys.stderr)
        return 1
