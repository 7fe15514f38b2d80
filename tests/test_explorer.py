"""The run explorer (index.html, xai.explorer) in headless Chromium: table, filters, sample view, hover values
against the maps file, links, keys, hostile names, and a 50,000-sample run opened in under 2 s.

Needs chromium and chromedriver (/usr/bin, Debian's packages: `make test` installs them as root) and selenium
(requirements.txt); without them these tests skip, saying so. Any JavaScript error in the browser's console
fails the test that caused it."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import run_args
from xai.cli import main
from xai.explorer import explorer_sample_file, write_explorer, write_sample_data
from xai.mapfile import load_maps

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
HOSTILE = "<img src=x onerror=alert(1)>.png"


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements.txt)")
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(
            f"no browser: {CHROMIUM} and {CHROMEDRIVER} are not installed (apt-get install chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser):
    """The browser; after the test, fail on any error in its console (JavaScript errors, files not found)."""
    browser.get_log("browser")  # what earlier tests left
    yield browser
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors


@pytest.fixture(scope="module")
def compared(tiny_run, tmp_path_factory) -> Path:
    _base, data, ckpt = tiny_run
    out = tmp_path_factory.mktemp("explorer") / "run"
    assert main("scorecam", run_args(ckpt, data, out, "--compare", "--workers", "0")) == 0
    return out


def _open(driver, url: str):
    driver.get("about:blank")  # a new page even where only the #fragment differs
    driver.get(url)
    for _ in range(100):
        if driver.execute_script("return document.body && document.body.getAttribute('data-ready')"):
            return
        time.sleep(0.05)
    raise AssertionError(f"the explorer did not start: {driver.get_log('browser')}")


def _wait(driver, script: str, timeout: float = 10.0):
    end = time.time() + timeout
    while time.time() < end:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def _rows(driver) -> list[list[str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#samples tbody tr')].map(r => [...r.cells].map(c => c.textContent))"
    )


def _canvas_stats(driver, method: str | None = None) -> list[list[float]]:
    """Per canvas (of `method`, or all): the mean and spread of its pixels."""
    return driver.execute_script(
        """const sel = arguments[0] ? `#panels canvas[data-method="${arguments[0]}"]` : '#panels canvas';
        return [...document.querySelectorAll(sel)].map(c => {
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let s = 0, s2 = 0, n = 0;
          for (let i = 0; i < d.length; i += 4) { const v = d[i] + d[i + 1] + d[i + 2]; s += v; s2 += v * v; n++; }
          return [s / n, Math.sqrt(s2 / n - (s / n) ** 2)];
        });""",
        method,
    )


def _click(driver, css: str, text: str | None = None):
    for element in driver.find_elements("css selector", css):
        if text is None or element.text == text:
            element.click()
            return element
    raise AssertionError(f"no {css} {text or ''}")


def test_table_sorts_filters_and_opens_a_sample(page, compared):
    import json

    _open(page, (compared / "index.html").as_uri())
    summary = json.loads((compared / "summary.json").read_text())
    assert len(_rows(page)) == len(summary) == 10  # 2 samples x 5 classes
    _click(page, "#class-filter button", "root")
    _click(page, "#samples th", "IoU")  # the ten worst root predictions: two clicks
    rows = _rows(page)
    ious = sorted(r["iou"] for r in summary if r["class"] == "root")
    assert [r[2] for r in rows] == ["root", "root"] and [float(r[3]) for r in rows] == pytest.approx(ious, abs=1e-3)
    _click(page, "#samples th", "IoU")
    assert [float(r[3]) for r in _rows(page)] == pytest.approx(ious[::-1], abs=1e-3)
    name = summary[0]["image"]
    page.find_element("id", "text-filter").send_keys(name)
    _wait(page, "return document.querySelectorAll('#samples tbody tr').length === 1")
    _click(page, "#samples tbody tr")
    _wait(page, "return document.querySelectorAll('#panels canvas').length === 2")
    assert page.find_element("id", "sample-title").text.endswith(name)
    before = _canvas_stats(page)
    assert all(spread > 1 for _mean, spread in before)  # drawn: not one colour
    _click(page, "#class-tabs button", "seed")
    assert "class=seed" in page.current_url
    _click(page, "#method-toggles input#method-gradcam")  # off: Score-CAM alone
    _wait(page, "return document.querySelectorAll('#panels canvas').length === 1")
    assert "method=scorecam" in page.current_url
    map_on = _canvas_stats(page, "scorecam")[0]
    page.execute_script(
        "const s = document.getElementById('opacity'); s.value = 0; s.dispatchEvent(new Event('input'));"
    )
    assert _canvas_stats(page, "scorecam")[0] != map_on  # the map's opacity changed what is drawn


def _model_probabilities(ckpt: Path, photo: Path) -> np.ndarray:
    """C×H×W: every class's probability at each pixel of the photograph, from a forward of the model of its own
    (Attribution.probabilities of an engine of xai.explain on the photograph preprocessed as the CLI does),
    mapped back through the letterbox as the explorer maps them (nearest: each pixel takes the input pixel that
    decided its class, as the prediction and the confidence do)."""

    import xai

    explanation = xai.explain(ckpt, photo, methods=("gradcam",))
    assert isinstance(explanation, xai.Explanation)
    engine = explanation._session.setup.engines["gradcam"]
    attribution = engine.explain(explanation._sample.image[None].to(engine.device))
    assert attribution.probabilities is not None
    p = attribution.probabilities[0].detach().cpu().numpy()
    return np.stack([explanation._ex.letterbox.to_original(c, nearest=True) for c in p])


def test_hover_shows_the_values_of_the_maps_file(page, compared, tiny_run):
    from selenium.webdriver.common.action_chains import ActionChains

    _open(page, (compared / "index.html").as_uri() + "#sample=1&class=root")
    _wait(page, "return document.querySelectorAll('#panels canvas').length === 2")
    maps = load_maps(compared / "raw_maps" / "sample1.npz")
    root = maps.class_names.index("root")
    probabilities = _model_probabilities(tiny_run[2], next(tiny_run[1].rglob(maps.image_name)))
    canvas = page.find_element("css selector", "#panels canvas")
    size = canvas.size
    for fx, fy in ((0.3, 0.4), (0.6, 0.7), (0.5, 0.2)):
        dx, dy = int((fx - 0.5) * size["width"]), int((fy - 0.5) * size["height"])
        ActionChains(page).move_to_element_with_offset(canvas, dx, dy).perform()
        text = page.find_element("id", "hover").text
        where = re.search(r"x=(\d+) y=(\d+)", text)
        assert where is not None, text
        x, y = int(where.group(1)), int(where.group(2))
        assert f"predicted: {maps.class_names[int(maps.pred[y, x])]}" in text
        assert maps.gt is not None and f"ground truth: {maps.class_names[int(maps.gt[y, x])]}" in text
        for method in ("gradcam", "scorecam"):
            found = re.search(rf"\[{method}\]: ([0-9.]+)", text)
            assert found is not None, text
            shown = float(found.group(1))
            expected = float(np.clip(maps.on_photograph(method)[root][y, x], 0, 1))
            assert shown == pytest.approx(expected, abs=1 / 255 + 2e-3), (method, x, y)
        listed = re.search(r"class probabilities: (.*)", text)
        assert listed is not None, text
        pairs = [entry.rsplit(" ", 1) for entry in listed.group(1).split(", ")]
        assert sorted(name for name, _ in pairs) == sorted(maps.class_names)  # every class, once
        values = [float(v) for _, v in pairs]
        assert values == sorted(values, reverse=True)
        assert dict(pairs)[maps.class_names[int(maps.pred[y, x])]] == pairs[0][1]  # the predicted class first
        for name, value in pairs:  # 8 bits (1/255), float16 storage, three decimals shown
            expected = float(probabilities[maps.class_names.index(name)][y, x])
            assert float(value) == pytest.approx(expected, abs=1 / 255 + 2e-3), (name, x, y, text)


def test_a_link_reopens_its_view_and_keys_move(page, compared):
    _open(page, (compared / "index.html").as_uri() + "#sample=1&class=root&method=scorecam")
    _wait(page, "return document.querySelectorAll('#panels canvas').length === 1")
    assert page.find_element("id", "sample-title").text.startswith("sample1:")
    assert page.find_element("css selector", "#panels canvas").get_attribute("data-method") == "scorecam"
    assert page.find_element("css selector", "#class-tabs button[aria-pressed=true]").text == "root"
    body = page.find_element("tag name", "body")
    from selenium.webdriver.common.keys import Keys

    body.send_keys(Keys.ARROW_RIGHT)
    assert page.find_element("css selector", "#class-tabs button[aria-pressed=true]").text == "seed"
    body.send_keys(Keys.ARROW_UP)
    _wait(page, "return document.getElementById('sample-title').textContent.startsWith('sample0:')")
    assert "sample=0" in page.current_url and "class=seed" in page.current_url


def test_names_are_text_never_markup(page, tiny_run, tmp_path):
    _base, data, ckpt = tiny_run
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(next((data / "images").iterdir()), photos / HOSTILE)
    out = tmp_path / "run"
    args = ["--model_path", str(ckpt), "--output_dir", str(out), "--images", str(photos), "--methods", "gradcam"]
    assert main("gradcam", [*args, "--no_progress", "--workers", "0", "--max_activation_maps", "4"]) == 0
    _open(page, (out / "index.html").as_uri())
    assert any(HOSTILE in cell for row in _rows(page) for cell in row)
    _click(page, "#samples tbody tr")
    _wait(page, "return document.querySelectorAll('#panels canvas').length === 1")
    assert page.find_element("id", "sample-title").text == f"sample0: {HOSTILE}"
    assert page.execute_script("return document.querySelectorAll('main img').length") == 0
    assert page.find_element("id", "layer-tp").get_attribute("disabled")  # no mask: no TP/FP/FN
    values = page.execute_script("return XAIExplorer.valuesAt(1, 1)")
    assert "predicted" in values and "truth" not in values and "gradcam" in values["maps"]


def large_run(out: Path, samples: int = 50_000, classes: tuple[str, ...] = ("background", "root", "leaf")) -> Path:
    """A run folder of `samples` samples as finalize writes it (explorer/data.js, index.html), with the explorer
    file of sample 0 alone (the others are not opened)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    labels = rng.integers(0, len(classes), (48, 64), dtype=np.uint8)
    grad = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1))
    maps = {"gradcam": dict.fromkeys(classes, grad)}
    write_sample_data(
        out / explorer_sample_file("sample0"), "sample0", "p0.png", rgb, labels, labels, None, maps, {}, {}
    )
    iou = rng.random((samples, len(classes)))
    entries = [
        {
            "index": i,
            "name": f"plate{i // 100:04d}_seedling{i % 100:02d}.png",
            "file": explorer_sample_file("sample0") if i == 0 else None,
            "rows": {c: {"iou": iou[i, k], "dice": 2 * iou[i, k] / (1 + iou[i, k])} for k, c in enumerate(classes)},
        }
        for i in range(samples)
    ]
    columns = [("iou", "IoU", 3), ("dice", "Dice", 3)]
    write_explorer(out, entries, classes, [("gradcam", "Grad-CAM")], columns, title="50,000 samples")
    return out


def test_fifty_thousand_samples_open_in_under_two_seconds(page, tmp_path):
    out = large_run(tmp_path / "large")
    _open(page, (out / "index.html").as_uri())
    ready = page.execute_script("return XAIExplorer.ready")  # ms from navigation to the table drawn
    assert ready < 2000, f"{ready:.0f} ms to interactive"
    assert page.find_element("id", "count").text.startswith("150000 of 150000 rows")
    t0 = time.perf_counter()
    _click(page, "#class-filter button", "root")
    _click(page, "#samples th", "IoU")
    seconds = time.perf_counter() - t0
    assert len(_rows(page)) == 100 and seconds < 2, seconds
    print(f"50,000 samples: interactive after {ready:.0f} ms; filter and sort {seconds * 1000:.0f} ms")


def test_explorer_images_are_small(tmp_path):
    rgb = np.zeros((2000, 3000, 3), np.uint8)
    cv2.circle(rgb, (1500, 1000), 600, (0, 200, 0), -1)
    path = tmp_path / "s.js"
    write_sample_data(path, "sample0", "big.png", rgb, None, np.zeros((2000, 3000), np.uint8), None, {}, {}, {})
    text = path.read_text()
    assert '"width":512,"height":341' in text and len(text) < 100_000
