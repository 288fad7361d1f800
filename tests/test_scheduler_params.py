"""The scheduler keyword table (config/scheduler_params) matches the installed diffusers, so presets are checked right."""

import inspect
import typing

import pytest

from sdxl_nb.config.presets import KNOWN_SCHEDULER_CLASSES
from sdxl_nb.config.scheduler_params import EXTRA_REQUIREMENTS, check_kwargs, known_classes, scheduler_params

diffusers = pytest.importorskip("diffusers")
LEFT_OUT = {"UniPCMultistepScheduler": {"solver_p"}}  # objects, not JSON values


def signature(name):
    """The class's own __init__ keywords (a stand-in class without its extra requirement has none)."""
    cls = getattr(diffusers, name)
    if name in EXTRA_REQUIREMENTS:
        import importlib.util

        if importlib.util.find_spec(EXTRA_REQUIREMENTS[name]) is None:
            import ast
            from pathlib import Path

            source = Path(inspect.getfile(diffusers)).parent / "schedulers" / "scheduling_dpmsolver_sde.py"
            tree = ast.parse(source.read_text(encoding="utf-8"))
            node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name)
            init = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
            return {a.arg: None for a in init.args.args[1:]}
    params = inspect.signature(cls.__init__).parameters
    return {p.name: p.annotation for p in list(params.values())[1:]}


def test_the_table_knows_every_class_presets_may_name():
    assert known_classes() == KNOWN_SCHEDULER_CLASSES


@pytest.mark.parametrize("name", sorted(KNOWN_SCHEDULER_CLASSES))
def test_keywords_and_literal_values_match_diffusers(name):
    real = signature(name)
    table = scheduler_params(name)
    assert set(table) == set(real) - LEFT_OUT.get(name, set())
    for key, annotation in real.items():
        if key not in table or annotation is None:
            continue
        literal = [a for a in typing.get_args(annotation) if typing.get_origin(a) is typing.Literal]
        if typing.get_origin(annotation) is typing.Literal:
            literal = [annotation]
        if literal:
            assert set(table[key]) - {None} == set(typing.get_args(literal[0])), key
        elif annotation in (int, float, bool):
            assert table[key].rstrip("?") == annotation.__name__, key


@pytest.mark.parametrize("name", sorted(KNOWN_SCHEDULER_CLASSES - set(EXTRA_REQUIREMENTS)))
def test_every_accepted_text_value_builds_the_scheduler(name):
    cls = getattr(diffusers, name)
    for key, kind in scheduler_params(name).items():
        if isinstance(kind, tuple):
            for value in kind:
                if value is None:
                    continue
                kwargs = {key: value}
                if value in ("dpmsolver", "sde-dpmsolver"):
                    kwargs["final_sigmas_type"] = "sigma_min"
                assert check_kwargs(name, kwargs) is None
                cls(**kwargs)  # raises on a value the class refuses


@pytest.mark.parametrize("kwargs, problem", [
    ({"use_karras_sigma": True}, "'use_karras_sigma' is not a DPMSolverMultistepScheduler setting; accepted: "),
    ({"use_karras_sigmas": "yes"}, 'use_karras_sigmas "yes" must be true or false'),
    ({"solver_order": 2.5}, "solver_order 2.5 must be a whole number"),
    ({"algorithm_type": "dpm"}, 'algorithm_type "dpm" is not accepted; accepted: dpmsolver, dpmsolver++'),
    ({"beta_start": float("nan")}, "beta_start NaN must be a finite number"),
    ({"use_karras_sigmas": True, "use_exponential_sigmas": True}, "cannot both be true"),
    ({"solver_order": 4}, "solver_order 4 is out of range; accepted: 1 to 3"),
    ({"algorithm_type": "dpmsolver"}, 'needs "final_sigmas_type": "sigma_min"'),
])
def test_wrong_names_and_values_are_named(kwargs, problem):
    assert problem in check_kwargs("DPMSolverMultistepScheduler", kwargs)


def test_right_kwargs_pass():
    assert check_kwargs("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True,
                                                        "solver_order": 3, "beta_start": 1}) is None
