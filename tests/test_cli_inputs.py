"""Bad files given to the CLI end in one line naming the file or column and the fix, never a traceback."""

import numpy as np
import pandas as pd
import pytest

from gen_factory.cli import main as cli


@pytest.mark.parametrize("name, content, words", [
    ("rows.parquet", b"PAR1 this is not a parquet file", "readable Parquet"),
    ("rows.csv", None, "column 'b': inf"),
    ("images.npz", b"not a zip archive", "NPZ with an `images` array"),
    ("rows.txt", b"a,b\n1,2\n", ".parquet, .csv or .npz"),
])
def test_score_refuses_bad_files_with_one_line(tmp_path, capsys, name, content, words):
    path = tmp_path / name
    if content is None:
        pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, np.inf]}).to_csv(path, index=False)
    else:
        path.write_bytes(content)
    assert cli(["score", "some-model", str(path), "--local"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and "Traceback" not in err
