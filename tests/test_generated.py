"""generated/ is exactly what `make generate` writes today."""

from __future__ import annotations

from pathlib import Path

from netgen.jobs.paper import generate, paper_specs

ROOT = Path(__file__).resolve().parent.parent


def test_generated_folder_matches_a_fresh_generation(tmp_path):
    names = generate(tmp_path)
    assert sorted(names) == sorted(p.name for p in (ROOT / "generated").iterdir() if p.is_dir())
    assert len(names) == len(paper_specs()) == 28
    for name in names:
        fresh = {p.name: p.read_bytes() for p in (tmp_path / name).iterdir()}
        committed = {p.name: p.read_bytes() for p in (ROOT / "generated" / name).iterdir()}
        assert set(fresh) == set(committed), name
        for file_name, payload in fresh.items():
            assert committed[file_name] == payload, f"generated/{name}/{file_name} is stale: run make generate"
    # The figures beside the folders (fig3.svg, ...): exactly those, byte for byte.
    fresh_files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    committed_files = {p.name: p.read_bytes() for p in (ROOT / "generated").iterdir() if p.is_file()}
    assert fresh_files.keys() == committed_files.keys() and fresh_files, sorted(committed_files)
    for file_name, payload in fresh_files.items():
        assert committed_files[file_name] == payload, f"generated/{file_name} is stale: run make generate"
