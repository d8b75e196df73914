"""The agency/unit registry file: the example data loads; mistakes are reported with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from callflow.incidents import AgencyType, Category, District, RegistryError, load_registry, suggest_unit

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_AGENCIES = REPO / "examples" / "agencies-manado.example.toml"


def test_example_registry_covers_every_district_and_says_example() -> None:
    reg = load_registry(EXAMPLE_AGENCIES)
    assert reg.example
    assert "EXAMPLE DATA" in EXAMPLE_AGENCIES.read_text()
    assert all(u.example and u.name.startswith("EXAMPLE") for u in reg.units)
    for district in District:
        types = {u.agency_type for u in reg.units if u.district is district}
        assert {AgencyType.AMBULANCE, AgencyType.POLICE, AgencyType.FIRE, AgencyType.PUBLIC_WORKS,
                AgencyType.UTILITY} <= types, district
    for category in Category:
        for district in District:
            assert suggest_unit(reg.units, category, district) is not None, (category, district)
    assert suggest_unit(reg.units, Category.ELECTRICITY, District.SARIO).id == "electricity-sario"  # type: ignore[union-attr]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agencies.toml"
    path.write_text(text)
    return path


def test_unknown_type_is_reported_with_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '''example = true

[[agency]]
id = "a"
name = "A"
type = "ambulance"
district = "wenang"
[[agency.unit]]
id = "a1"
name = "A1"

[[agency]]
id = "b"
name = "B"
type = "spaceship"
district = "wenang"
[[agency.unit]]
id = "b1"
name = "B1"
''')
    with pytest.raises(RegistryError, match=rf"{path}:12: agency 'b' has unknown type 'spaceship'; use"):
        load_registry(path)


def test_unknown_district_of_a_unit_and_duplicates(tmp_path: Path) -> None:
    head = '[[agency]]\nid = "a"\nname = "A"\ntype = "fire"\ndistrict = "wenang"\n'
    path = _write(tmp_path, head + '[[agency.unit]]\nid = "a1"\nname = "A1"\n'
                  '[[agency.unit]]\nid = "a2"\nname = "A2"\ndistrict = "Atlantis"\n')
    with pytest.raises(RegistryError, match=rf"{path}:9: unit 'a2': unknown district 'Atlantis'"):
        load_registry(path)
    path = _write(tmp_path, head + '[[agency.unit]]\nid = "a1"\nname = "A1"\n'
                  '[[agency.unit]]\nid = "a1"\nname = "again"\n')
    with pytest.raises(RegistryError, match=rf"{path}:9: unit id 'a1' appears twice"):
        load_registry(path)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[[agency]\n")
    with pytest.raises(RegistryError, match=rf"{path}: not valid TOML: .*line 1"):
        load_registry(path)
    with pytest.raises(RegistryError, match="cannot read the agency file"):
        load_registry(tmp_path / "missing.toml")
    with pytest.raises(RegistryError, match="no \\[\\[agency\\]\\] tables"):
        load_registry(_write(tmp_path, "example = true\n"))
