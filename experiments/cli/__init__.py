"""The `flaxzoo` command line: a thin shell over the Python API.

  flaxzoo list
  flaxzoo train brain_age_gm [--workdir DIR] [--steps N] [--lr X] [--batch-size B]
                             [--seed S] [--data-dir D] [--parallel MODE] [--devices N]
                             [--coordinator HOST:PORT --num-processes P --process-id I]

Errors a user can cause (bad flags, unknown names, malformed data, unwritable
directories) print one line `flaxzoo: error: ...` and exit with status 2.

`parser` (the flags), `commands` (each a thin shell over the Python API), `output` (tables, messages,
logging), `signals` (SIGINT and SIGTERM), `entry` (the program: exit codes, the compilation cache).
"""

from flaxzoo.experiments.cli.entry import entry_point as entry_point
from flaxzoo.experiments.cli.entry import main as main
