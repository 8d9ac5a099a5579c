"""The caption page driven in headless Chromium (Debian's chromium and chromedriver).

Without a browser these tests are skipped, unless SAT_KERAS_REQUIRE_BROWSER
is set (as `.ci/run` sets it), where a missing browser fails them. Each
state of the page is saved as a screenshot under the test's temp dir.
"""

import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from helpers import free_port
from helpers import wait_until_serving

from sat_keras.data.records import select_split
from sat_keras.data.synthetic import generate_synthetic
from sat_keras.serving import CaptionClient
from sat_keras.serving.web import start_web_proxy

SAT_KERAS = os.path.join(os.path.dirname(sys.executable), "sat-keras")
SHAPES = os.path.join(os.path.dirname(__file__), "..", "..", "saved_models", "shapes")
SIDE = 448  # the page's main canvas
WAIT = 60


def _browser_paths():
    """(chromium, chromedriver), or a skip (a failure under SAT_KERAS_REQUIRE_BROWSER)."""
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install selenium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium:
        missing.append("chromium (apt-get install chromium)")
    if not driver:
        missing.append("chromedriver (apt-get install chromium-driver)")
    if missing:
        message = "No headless browser: missing " + ", ".join(missing)
        if os.environ.get("SAT_KERAS_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return chromium, driver


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1000,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_script_timeout(WAIT)
    yield driver
    driver.quit()


def _until(driver, condition, message):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.2).until(
        lambda d: condition(d), message)


def _element(driver, element_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def _upload(driver, path):
    """Chooses `path` in the page's file input, then waits for a caption or an error."""
    driver.execute_script("document.getElementById('status').textContent = '';"
                          "document.getElementById('error').hidden = true;")
    _element(driver, "file-input").send_keys(str(path))
    _until(driver, lambda d: _element(d, "status").text.startswith("Captioned")
           or _element(d, "error").is_displayed(), f"no caption or error for {path}")


def _overlay_cells(driver):
    """The overlay's alpha at each grid cell's centre, as the page drew it: (side * side,)."""
    values = driver.execute_script("""
        const overlay = document.getElementById('overlay');
        const side = Number(overlay.dataset.grid);
        const pixels = overlay.getContext('2d').getImageData(0, 0, overlay.width,
                                                             overlay.height).data;
        const cells = [];
        for (let row = 0; row < side; row++) {
          for (let column = 0; column < side; column++) {
            const y = Math.floor((row + 0.5) * overlay.height / side);
            const x = Math.floor((column + 0.5) * overlay.width / side);
            cells.push(pixels[4 * (y * overlay.width + x) + 3]);
          }
        }
        return cells;""")
    return np.array(values, "float64")


def _assert_overlay_shows(cells, alpha):
    """The overlay is alpha / max(alpha) in 0..255 at every cell, brightest where alpha is."""
    alpha = np.asarray(alpha, "float64")
    assert cells.shape == alpha.shape
    np.testing.assert_allclose(cells, 255 * alpha / alpha.max(), atol=8)
    assert alpha[int(np.argmax(cells))] >= alpha.max() * (1 - 3 / 255)


def _press(driver, key, times=1):
    from selenium.webdriver.common.action_chains import ActionChains

    for _ in range(times):
        ActionChains(driver).send_keys(key).perform()


def _truncated_jpeg(path, tmp_path):
    from PIL import Image

    jpeg = tmp_path / "photo.jpg"
    Image.open(path).convert("RGB").save(jpeg, quality=90)
    data = jpeg.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[:len(data) // 2])
    return truncated


@pytest.fixture(scope="module")
def shapes_served(tmp_path_factory):
    """`sat-keras serve --model-dir saved_models/shapes` on free ports: (grpc, rest)."""
    grpc_port, rest_port = free_port(), free_port()
    process = subprocess.Popen(
        [SAT_KERAS, "serve", "--model-dir", SHAPES, "--port", str(grpc_port),
         "--rest-port", str(rest_port), "--in-process"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with CaptionClient(f"127.0.0.1:{grpc_port}", "shapes", timeout=60) as client:
            wait_until_serving(client, process)
        yield grpc_port, rest_port
    finally:
        process.terminate()
        process.communicate(timeout=60)


def test_the_page_captions_an_image_and_shows_where_each_word_looked(
        browser, shapes_served, tmp_path):
    from selenium.webdriver.common.keys import Keys

    grpc_port, rest_port = shapes_served
    records = select_split(generate_synthetic(str(tmp_path / "data"), num_images=30, seed=11),
                           "test")
    path = records[0].image_path
    browser.get(f"http://127.0.0.1:{rest_port}/")
    _until(browser, lambda d: "shapes" in _element(d, "model-line").text, "no model name")
    browser.save_screenshot(str(tmp_path / "1-loaded.png"))

    _upload(browser, path)
    assert not _element(browser, "error").is_displayed(), _element(browser, "error").text
    with CaptionClient(f"127.0.0.1:{grpc_port}", "shapes", timeout=60) as client:
        expected = client.caption([open(path, "rb").read()])
    caption = expected["captions"][0]
    assert _element(browser, "caption").text == caption
    words = caption.split()
    assert len(words) >= 3
    attention = expected["attention_weights"][0]  # (T, L)
    first = _overlay_cells(browser)
    _assert_overlay_shows(first, attention[0])
    nbest = [item.text for item in _element(browser, "nbest").find_elements("tag name", "li")]
    assert len(nbest) == len(expected["nbest_captions"][0]) == 3
    assert nbest[0].startswith(caption)
    assert len(_element(browser, "thumbnails").find_elements("tag name", "canvas")) == len(words)
    browser.save_screenshot(str(tmp_path / "2-captioned.png"))

    # The keyboard moves to the third word: the overlay changes to its map.
    _element(browser, "words").find_elements("tag name", "button")[0].click()
    _press(browser, Keys.ARROW_RIGHT, times=2)
    assert _element(browser, "overlay").get_attribute("data-word") == "2"
    assert words[2] in _element(browser, "view-caption").text
    third = _overlay_cells(browser)
    assert not np.array_equal(third, first)
    _assert_overlay_shows(third, attention[2])
    browser.save_screenshot(str(tmp_path / "3-third-word.png"))

    _upload(browser, _truncated_jpeg(path, tmp_path))
    error = _element(browser, "error")
    assert error.is_displayed()
    assert "cannot read this file as an image" in error.text and "image_bytes[0]" in error.text
    assert not _element(browser, "result").is_displayed()  # the last image's caption is gone
    browser.save_screenshot(str(tmp_path / "4-truncated-jpeg.png"))


def _deliver(driver, event, data):
    """Drops `data` on the drop zone, or pastes it, as a PNG file."""
    driver.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[1]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], 'delivered.png', {type: 'image/png'}));
        if (arguments[0] === 'drop') {
          document.getElementById('drop-zone').dispatchEvent(
              new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        } else {
          document.dispatchEvent(
              new ClipboardEvent('paste', {clipboardData: transfer, bubbles: true}));
        }""", event, base64.b64encode(data).decode())


class _FakeModelServer:
    """A REST `:predict` that answers every image with a fixed prediction."""

    def __init__(self, prediction):
        body = json.dumps({"predictions": [prediction]}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _peaked_maps(side, words, seed):
    """One attention map per step over side x side cells, each peaked at its own cell."""
    rng = np.random.default_rng(seed)
    maps = rng.uniform(0.0, 0.2, size=(words, side * side))
    peaks = rng.choice(side * side, size=words, replace=False)
    maps[np.arange(words), peaks] = 1.0
    return maps / maps.sum(-1, keepdims=True)


@pytest.mark.parametrize("side", [7, 14])
def test_the_page_draws_any_square_grid_and_the_n_best_behind_the_forwarding_server(
        browser, tmp_path, side):
    best, second = _peaked_maps(side, 5, seed=side), _peaked_maps(side, 4, seed=side + 1)
    prediction = {
        "captions": "a dog runs on grass", "scores": -3.5, "attention_weights": best.tolist(),
        "nbest_captions": ["a dog runs on grass", "a dog on grass"],
        "nbest_scores": [-3.5, -4.25],
        "nbest_attention_weights": [best.tolist(), np.pad(second, ((0, 1), (0, 0))).tolist()],
    }
    backend = _FakeModelServer(prediction)
    proxy, port = start_web_proxy(0, ("127.0.0.1", backend.port), "fake",
                                  {"image_limits": {"max_bytes": 100_000}}, host="127.0.0.1")
    image = tmp_path / "image.png"
    image.write_bytes(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="))
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        _until(browser, lambda d: "fake" in _element(d, "model-line").text, "no model name")
        _upload(browser, image)
        assert _element(browser, "caption").text == "a dog runs on grass"
        assert _element(browser, "overlay").get_attribute("data-grid") == str(side)
        _assert_overlay_shows(_overlay_cells(browser), best[0])
        _element(browser, "words").find_elements("tag name", "button")[3].click()
        _assert_overlay_shows(_overlay_cells(browser), best[3])

        # The second of the n best: its own words and its own attention.
        _element(browser, "nbest").find_elements("tag name", "button")[1].click()
        assert _element(browser, "caption").text == "a dog on grass"
        assert "-4.250" in _element(browser, "score").text
        _element(browser, "words").find_elements("tag name", "button")[2].click()
        _assert_overlay_shows(_overlay_cells(browser), second[2])
        browser.save_screenshot(str(tmp_path / f"grid-{side}.png"))

        # Dropped and pasted images are captioned as chosen ones are.
        for event in ("drop", "paste"):
            browser.execute_script("document.getElementById('status').textContent = '';")
            _deliver(browser, event, image.read_bytes())
            _until(browser, lambda d: _element(d, "status").text.startswith("Captioned"),
                   f"no caption for a {event}ped image")
            assert _element(browser, "caption").text == "a dog runs on grass"

        # At phone width nothing runs off the side.
        browser.set_window_size(390, 844)
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth")
        browser.save_screenshot(str(tmp_path / f"grid-{side}-phone.png"))
        browser.set_window_size(1000, 1600)

        too_large = tmp_path / "large.png"
        too_large.write_bytes(image.read_bytes() + b"\0" * 200_000)
        _upload(browser, too_large)
        assert "accepts images of at most" in _element(browser, "error").text

        backend.stop()  # the model server goes down behind the page
        _upload(browser, image)
        assert "not answering" in _element(browser, "error").text
        proxy.stop()  # and then the page's own server
        _upload(browser, image)
        assert "Cannot reach the captioning server" in _element(browser, "error").text
        browser.save_screenshot(str(tmp_path / f"grid-{side}-server-down.png"))
    finally:
        backend.stop()
        proxy.stop()
