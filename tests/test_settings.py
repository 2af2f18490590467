from pathlib import Path

import pytest
from pydantic import ValidationError

from marc.memory.core.settings import PE_CORE_B16, Settings
from marc.memory.core.timeline import Span


def test_environment_variables_configure_everything(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("MARC_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("MARC_MODELS", "tiny")
    monkeypatch.setenv("MARC_MAX_EVENT_S", "12.5")
    s = Settings()
    assert s.home == (tmp_path / "h").resolve()
    assert s.catalog_url == f"sqlite:///{tmp_path / 'h' / 'catalog.db'}"
    assert s.encoder_id == "tiny" and s.max_event_s == 12.5 and s.qdrant_url == ""
    assert Settings(models="default", home=tmp_path).encoder_id == PE_CORE_B16


def test_invalid_values_are_refused_with_the_field_named():
    with pytest.raises(ValidationError, match="models"):
        Settings(models="huge")
    with pytest.raises(ValidationError, match="MIN_EVENT_S"):
        Settings(min_event_s=40, max_event_s=30)


def test_segmentation_key_moves_only_with_boundary_settings(tmp_path: Path):
    base = Settings(home=tmp_path)
    assert base.segmentation_key() == Settings(home=tmp_path / "x", batch_size=3).segmentation_key()
    assert base.segmentation_key() != Settings(home=tmp_path, max_event_s=10).segmentation_key()


def test_span_frames_and_sampling():
    s = Span.from_frames(25, 75, 25.0)
    assert (s.start_s, s.end_s, s.start_frame, s.end_frame) == (1.0, 3.0, 25, 75)
    assert s.sample_times(4) == [1.25, 1.75, 2.25, 2.75]
    with pytest.raises(ValueError):
        Span(2.0, 1.0, 25.0)
