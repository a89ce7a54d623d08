"""Each stage's deps in dvc.yaml cover every project module its imports reach.

The walk is static (ast) and transitive, over `import respiro...` and `from respiro... import`
anywhere in a module (function-level imports too), plus the `__init__.py` of every package
on the way, which Python runs as well (except those holding only a docstring: no code, so
nothing they could change). A module not covered by a dep (the file itself or a
folder above it) would let a code change leave the committed results silently stale.

Files a module reads rather than imports (the pages' templates) are no import: READ_BY names
them, and a stage that reaches the module must list them too.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
INFERENCE = SRC / "respiro" / "inference"
# Module -> the folder of files it reads at run time (templating.py renders templates/).
READ_BY = {INFERENCE / "templating.py": INFERENCE / "templates"}


def module_file(name: str) -> Path | None:
    base = SRC / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path) -> set[str]:
    """Project modules `path` imports: `from a.b import c` may name module a.b.c or a value."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "respiro"}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module.split(".")[0] == "respiro"
        ):
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


@cache
def reached_from(path: Path) -> frozenset[Path]:
    """Every project file that importing `path` runs, `path` included."""
    seen = {path}
    stack = [path]
    while stack:
        for name in imported_names(stack.pop()):
            parts = name.split(".")
            # the module and the package __init__ files above it
            for i in range(1, len(parts) + 1):
                found = module_file(".".join(parts[:i]))
                if found is not None and found not in seen:
                    seen.add(found)
                    stack.append(found)
    return frozenset(seen)


def stage_code_deps() -> dict[str, tuple[Path, list[Path]]]:
    """{stage: (its script, its deps that are project code)} from dvc.yaml."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        script = ROOT / "stages" / f"{name}.py"
        deps = [
            ROOT / d
            for d in stage.get("deps", [])
            if isinstance(d, str) and (d.startswith("src/") or d.startswith("stages/"))
        ]
        out[name] = (script, deps)
    return out


def has_code(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return not (len(body) <= 1 and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body))


def run_by(script: Path) -> frozenset[Path]:
    """What `python -m stages.<name>` runs: the script, the stages package's __init__.py
    (Python runs it first) and every project module the two reach."""
    return reached_from(script) | reached_from(ROOT / "stages" / "__init__.py")


def uncovered(script: Path, deps: list[Path]) -> list[str]:
    return sorted(
        str(f.relative_to(ROOT))
        for f in run_by(script)
        if has_code(f) and not any(f == d or d in f.parents for d in deps)
    )


def unreached(script: Path, deps: list[Path]) -> list[str]:
    """Listed module files no import of the stage reaches: a stale dep reruns it for nothing."""
    reached = run_by(script)
    return sorted(str(d.relative_to(ROOT)) for d in deps if d.suffix == ".py" and d != script and d not in reached)


def unlisted_reads(script: Path, deps: list[Path]) -> list[str]:
    """Folders that modules run by `script` read (READ_BY) and no dep covers."""
    return sorted(
        str(folder.relative_to(ROOT))
        for module, folder in READ_BY.items()
        if module in run_by(script) and not any(folder == d or d in folder.parents for d in deps)
    )


@pytest.mark.parametrize("stage", list(stage_code_deps()))
def test_no_module_a_stage_lists_is_one_its_imports_never_reach(stage):
    script, deps = stage_code_deps()[stage]
    stale = unreached(script, deps)
    assert not stale, f"stage {stage}: dvc.yaml lists {', '.join(stale)}, which its imports never reach"


@pytest.mark.parametrize("stage", list(stage_code_deps()))
def test_every_module_a_stage_imports_is_one_of_its_deps(stage):
    script, deps = stage_code_deps()[stage]
    missing = uncovered(script, deps)
    assert not missing, f"stage {stage}: dvc.yaml deps miss {', '.join(missing)}"
    for dep in deps:
        assert dep.exists(), f"stage {stage}: dep {dep.relative_to(ROOT)} does not exist"


def test_the_check_fails_naming_the_module_when_a_dep_is_removed():
    script, deps = stage_code_deps()["train"]
    loss = SRC / "respiro" / "model" / "loss.py"
    assert loss in reached_from(script)
    without = [d for d in deps if d != loss and d not in loss.parents]
    assert "src/respiro/model/loss.py" in uncovered(script, without)


def test_training_code_reaches_only_train_and_prediction_reaches_evaluate_too():
    """The training loop and step reach the train stage alone: a comment edit in the step
    reruns train, not evaluate (which runs its model through training/prediction.py)."""
    training = SRC / "respiro" / "training"

    def reaching(module: Path) -> set[str]:
        return {name for name, (script, _) in stage_code_deps().items() if module in reached_from(script)}

    assert reaching(training / "loop.py") == reaching(training / "step.py") == {"train"}
    assert reaching(training / "prediction.py") == {"train", "evaluate", "errors"}
    evaluate_deps = stage_code_deps()["evaluate"][1]
    assert training / "step.py" not in evaluate_deps and training not in evaluate_deps


def test_the_pages_code_reaches_the_errors_stage_alone():
    """A figure's style or the page's markup is presentation: a change to it reruns the errors
    stage, never training or scoring (whose outputs the baseline and the fingerprint compare)."""
    inference = SRC / "respiro" / "inference"
    for module in ("figures.py", "page.py", "errors_page.py", "maps.py", "templating.py"):
        reaching = {
            name for name, (script, _) in stage_code_deps().items() if inference / module in reached_from(script)
        }
        assert reaching == {"errors"}, f"inference/{module} reaches {sorted(reaching)}"
    for name in ("train", "evaluate"):
        assert not any(inference in d.parents or d == inference for d in stage_code_deps()[name][1])


def test_no_module_imports_a_layer_above_it():
    layers = ["core", "data", "audio", "model", "evaluation", "training", "inference", "commands"]
    for path in sorted((SRC / "respiro").rglob("*.py")):
        rel = path.relative_to(SRC / "respiro").parts
        if len(rel) < 2:
            continue
        own = layers.index(rel[0])
        for name in imported_names(path):
            parts = name.split(".")
            if len(parts) > 1 and parts[1] in layers:
                assert layers.index(parts[1]) <= own, (
                    f"{path.relative_to(ROOT)} ({rel[0]}) imports {name}, a layer above it"
                )


@pytest.mark.parametrize("stage", list(stage_code_deps()))
def test_a_stage_that_renders_a_page_lists_its_templates(stage):
    script, deps = stage_code_deps()[stage]
    missing = unlisted_reads(script, deps)
    assert not missing, f"stage {stage}: dvc.yaml deps miss {', '.join(missing)}, which its code reads"


def test_the_templates_check_fails_when_the_errors_stage_leaves_them_out():
    from respiro.inference.templating import TEMPLATES

    templates = READ_BY[INFERENCE / "templating.py"]
    assert templates == SRC / Path(*TEMPLATES[0].split("."), TEMPLATES[1]) and any(templates.glob("*.html.j2"))
    script, deps = stage_code_deps()["errors"]  # it writes errors.html
    assert templates in deps
    assert unlisted_reads(script, [d for d in deps if d != templates]) == ["src/respiro/inference/templates"]
