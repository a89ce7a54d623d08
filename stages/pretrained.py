"""Stage pretrained: the initial weights model.pretrained asks for, as a tracked, verified file.

params model.pretrained, model.arch, pretrained -> models/pretrained/ (weights.json: the
choice and, for pretrained weights, the architecture's published file name and full SHA-256;
then also the file itself, e.g. resnet34-b627a593.pth, copied from pretrained.path or
$TORCH_HOME/hub/checkpoints/, or downloaded there first; a file published without a hash in
its name, the AST's model.safetensors, comes from pretrained.path only and is checked
against pretrained.sha256). DVC caches the folder, dvc.lock
records its hash, and the train stage depends on it: `dvc push` carries the weights to a
remote, and an offline machine that `dvc pull`s them needs no download.
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("pretrained", __doc__)  # --help answers before the imports below

import shutil
from pathlib import Path

from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.outputs import StageTimer, atomic_dir, write_json
from respiro.data.acquire.hub import find_hub_file, find_local_file, hash_prefix
from respiro.model.pretrained import RECORD, init_record
from respiro.model.registry import architecture_of

OUT = Path("models/pretrained")


def main() -> None:
    timer = StageTimer("pretrained")
    params = load_params()
    choice, arch = params.model.pretrained, architecture_of(params.model)
    if choice == "none":
        with atomic_dir(OUT) as tmp:
            write_json(tmp / RECORD, init_record(choice, arch.name))
        timer.done("model.pretrained=none: training starts from scratch (nothing to fetch)")
        return
    name, what = arch.weights_file(choice), f"{choice} {arch.label(False)}, for model.pretrained={choice}"
    if hash_prefix(name) is None:  # published without a hash in its name: the user's file only
        found = find_local_file(name, what, params.pretrained.path, params.pretrained.sha256)
    else:
        found = find_hub_file(name, what, params.pretrained.path, params.pretrained.url)
    with atomic_dir(OUT) as tmp:
        # A copy, not a link: DVC may make its outputs read-only or replace them by links
        # into its cache, which must never reach back into the user's file.
        shutil.copyfile(found.path, tmp / found.name)
        write_json(tmp / RECORD, init_record(choice, arch.name, found.name, found.sha256))
    pinned = hash_prefix(name) is not None or params.pretrained.sha256 is not None
    unpinned = "" if pinned else "; unpinned: set pretrained.sha256 to it to have the file checked"
    timer.done(f"{found.name} (SHA-256 {found.sha256}) from {found.source} ({found.path}){unpinned}")


if __name__ == "__main__":
    run_stage("pretrained", main, __doc__)
