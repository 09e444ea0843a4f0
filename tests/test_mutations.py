"""`tools/mutations.py` keeps up with the code: every mutation's edits still apply to today's source, exactly once,
in a copy, and its guarding tests exist. (Running the mutations is the tool's job, not the suite's.)"""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutations():
    spec = importlib.util.spec_from_file_location("mutations", REPO / "tools" / "mutations.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_every_mutation_applies_to_the_current_source(mutations):
    assert mutations.check_edits() == []
    for mutation in mutations.MUTATIONS:
        assert (REPO / mutation.tests[0]).is_file(), mutation.name


def test_a_mutation_is_applied_to_a_copy_and_undone(mutations, tmp_path):
    for mutation in mutations.MUTATIONS:
        for relative, _, _ in mutation.edits:
            (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relative, tmp_path / relative)
        before = {relative: (tmp_path / relative).read_text() for relative, _, _ in mutation.edits}
        originals = mutations.apply(tmp_path, mutation)
        for relative, _, new in mutation.edits:
            assert new in (tmp_path / relative).read_text(), mutation.name
        mutations.restore(originals)
        assert {relative: (tmp_path / relative).read_text() for relative in before} == before
    moved = mutations.Mutation("moved", (("stargan_keras/core/layers.py", "no such text", "x"),), ())
    with pytest.raises(ValueError, match="found 0 times"):
        mutations.apply(tmp_path, moved)
