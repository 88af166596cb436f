"""Config loading: defaults, relative paths, and errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcherd import config
from watcherd.config import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "photos").mkdir(exist_ok=True)
    path = tmp_path / "w.toml"
    path.write_text(text)
    return path


MINIMAL = '[watch]\npaths = ["photos"]\n[database]\npath = "db/w.db"\n'


def test_minimal_config_gets_defaults_and_resolves_relative_paths(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, MINIMAL))
    assert cfg.watch.paths == (tmp_path / "photos",)
    assert cfg.database.path == tmp_path / "db" / "w.db"
    assert cfg.broker.embedded and cfg.broker.url == ""
    assert cfg.spool_dir == tmp_path / "db" / "w.db.spool"
    assert cfg.thumbnails.sizes == (256, 1024) and cfg.thumbnails.format == "webp"
    assert cfg.embeddings.model == "ViT-B-32" and cfg.embeddings.device == "auto"
    assert "jpeg" in cfg.watch.extensions and "tiff" in cfg.watch.extensions


def test_example_config_is_valid_and_documents_every_key(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "config.example.toml"
    (example.parent / "photos").mkdir(exist_ok=True)
    try:
        text = example.read_text()
        cfg = config.load(example)
    finally:
        if not any((example.parent / "photos").iterdir()):
            (example.parent / "photos").rmdir()
    assert cfg.embeddings.batch_size == 32
    for section in ("watch", "database", "broker", "images", "thumbnails", "embeddings", "log"):
        dc = getattr(cfg, section)
        for field in dc.__dataclass_fields__:
            assert f"\n{field} =" in text, f"[{section}] {field} missing from config.example.toml"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (MINIMAL + "[thumbnails]\nsizes = 256\n", "thumbnails.sizes"),
        (MINIMAL + "[thumbnails]\nformat = 'gif'\n", "thumbnails.format"),
        (MINIMAL + "[thumbnails]\nquality = 101\n", "thumbnails.quality"),
        (MINIMAL + "[embeddings]\nbatch_size = 0\n", "embeddings.batch_size"),
        (MINIMAL + "[thumbnails]\nsoft_time_limit_seconds = 60\ntime_limit_seconds = 60\n",
         "thumbnails.time_limit_seconds"),
        (MINIMAL + "[thumbnails]\nmax_memory_per_child_mb = -1\n",
         "thumbnails.max_memory_per_child_mb"),
        (MINIMAL + "[embeddings]\nstep_time_limit_seconds = 0\n",
         "embeddings.step_time_limit_seconds"),
        (MINIMAL + "[embeddings]\ndevice = 'tpu'\n", "embeddings.device"),
        (MINIMAL + "[watch]\n", None),  # duplicate table: invalid TOML
        (MINIMAL + "[broker]\nurl = 'kafka://x'\n", "broker.url"),
        (MINIMAL + "[watch.extra]\n", None),
        (MINIMAL + "[log]\nlevel = 'loud'\n", "log.level"),
        (MINIMAL + "[thumbnails]\nsize = [1]\n", "thumbnails.size"),
        (MINIMAL + "[nonsense]\n", "[nonsense]"),
        (MINIMAL + "[watch.x]\n", None),
        ('[watch]\npaths = ["photos"]\n', "database.path"),
        ('[database]\npath = "x.db"\n', "watch.paths"),
        ('[watch]\npaths = ["missing"]\n[database]\npath = "x.db"\n', "does not exist"),
        (MINIMAL.replace('paths = ["photos"]', 'paths = ["photos"]\nsettle_seconds = true'),
         "watch.settle_seconds"),
        (MINIMAL.replace('paths = ["photos"]', 'paths = ["photos"]\nsettle_seconds = -1'),
         "watch.settle_seconds"),
    ],
)
def test_bad_config_names_key_and_file(tmp_path: Path, text: str, needle: str | None) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    message = str(err.value)
    assert str(path) in message
    if needle:
        assert needle in message


def test_missing_file_and_env_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.toml")
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    with pytest.raises(ConfigError, match="WATCHERD_CONFIG"):
        config.load(None)
    monkeypatch.setenv(config.ENV_VAR, str(write(tmp_path, MINIMAL)))
    assert config.load(None).database.path.name == "w.db"


def test_local_dir_model_and_checkpoint_resolve_against_config_folder(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, MINIMAL + '[embeddings]\nmodel = "local-dir:m"\n'
                            'pretrained = "weights/x.safetensors"\n'))
    assert cfg.embeddings.model == f"local-dir:{tmp_path / 'm'}"
    assert cfg.embeddings.pretrained == str(tmp_path / "weights" / "x.safetensors")
    cfg = config.load(write(tmp_path, MINIMAL))
    assert cfg.embeddings.pretrained == "laion2b_s34b_b79k"  # a tag stays a tag


def test_raws_videos_and_jpeg_xl_are_taken_by_default_and_video_can_be_turned_off(
        tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, MINIMAL))
    assert {"dng", "cr3", "nef", "mp4", "mov", "mts", "jxl"} <= set(cfg.taken_extensions)
    assert cfg.video.enabled and cfg.raw.prefer_embedded_preview
    off = config.load(write(tmp_path, MINIMAL + "[video]\nenabled = false\n"
                                      "[raw]\nprefer_embedded_preview = false\n"))
    assert "mp4" in off.watch.extensions and "mp4" not in off.taken_extensions
    assert "dng" in off.taken_extensions and not off.raw.prefer_embedded_preview
    mine = config.load(write(tmp_path, MINIMAL.replace('paths = ["photos"]', 'paths = ["photos"]'
                                                       '\nextensions = ["jpg", "MOV"]')))
    assert mine.taken_extensions == ("jpg", "mov")  # a list set by hand is the list


@pytest.mark.parametrize(("text", "needle"), [
    ("[video]\nenabled = 1\n", "video.enabled: expected true or false"),
    ("[raw]\nprefer_embedded_preview = \"yes\"\n", "raw.prefer_embedded_preview: expected"),
    ("[video]\nposter = 3\n", "video.poster: unknown key"),
])
def test_bad_video_and_raw_keys_are_named(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, MINIMAL + text))
    assert needle in str(err.value) and "w.toml" in str(err.value)
