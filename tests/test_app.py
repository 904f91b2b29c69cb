"""app.py, the Gradio demo: the streaming function, then the real page served by `python app.py --model DIR`
on 127.0.0.1, driven through gradio_client and through a real headless Chromium.

    .venv/bin/python -m pytest tests/test_app.py -q

The browser test needs Debian's `chromium` and `chromium-driver` packages and the `selenium` package; it skips,
saying so, without them. It saves a screenshot of the page in the test's tmp folder (set
APP_SCREENSHOT=docs/demo.png to also write it there, as the README's picture was made).
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

pytest.importorskip("gradio", reason="gradio is not installed (pip install gradio gradio-client)")

import app  # noqa: E402
from generate import GenerateError, generate_texts, load_model  # noqa: E402
from test_generate import save_tiny_ropegpt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Иван Ильич"
MAX_NEW_TOKENS = 24


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, corpora_dir) -> Path:
    """A tiny RopeGPT (random weights) with a byte-level BPE tokenizer trained on real Tolstoy."""
    path = tmp_path_factory.mktemp("app-model")
    save_tiny_ropegpt(path, corpora_dir, context=128)
    return path


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_model(str(model_dir), device="cpu")


def greedy_reference(loaded, prompt: str, max_new_tokens: int) -> str:
    model, tokenizer = loaded
    return generate_texts(model, tokenizer, [prompt], greedy=True, max_new_tokens=max_new_tokens)[0]


# ----------------------------------------------------------------------------------------- in-process


def test_gradio_analytics_off():
    import gradio.analytics

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert gradio.analytics.analytics_enabled() is False


def test_stream_completion_grows_to_the_greedy_text(loaded):
    model, tokenizer = loaded
    steps = list(app.stream_completion(model, tokenizer, PROMPT, temperature=0, max_new_tokens=MAX_NEW_TOKENS))
    assert len(steps) > 1, "the text should arrive in several pieces"
    for before, after in zip(steps, steps[1:]):
        assert after.startswith(before) and len(after) > len(before)
    assert steps[0].startswith(PROMPT) and len(steps[0]) > len(PROMPT)
    assert steps[-1] == greedy_reference(loaded, PROMPT, MAX_NEW_TOKENS)


def test_stream_completion_sampling_knobs(loaded):
    model, tokenizer = loaded
    torch.manual_seed(0)
    a = list(app.stream_completion(model, tokenizer, PROMPT, 1.0, 10, 0.9, 12))[-1]
    torch.manual_seed(0)
    b = list(app.stream_completion(model, tokenizer, PROMPT, 1.0, 10, 0.9, 12))[-1]
    assert a == b and a.startswith(PROMPT) and len(a) > len(PROMPT)
    with pytest.raises(GenerateError, match="prompt"):
        next(app.stream_completion(model, tokenizer, "", 0.8))
    with pytest.raises(GenerateError, match="max_new_tokens"):
        next(app.stream_completion(model, tokenizer, PROMPT, 0.8, max_new_tokens=0))


def test_sampling_never_answers_with_the_bare_prompt(loaded):
    """A seed whose first sampled token is eos under plain `generate` still gets a continuation in the app."""
    from generate import sampling_kwargs

    model, tokenizer = loaded
    prompt = "Казан шәһәре"
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    kwargs = sampling_kwargs(max_new_tokens=1, greedy=False, temperature=0.9, top_k=40, top_p=0.9)
    kwargs.pop("num_return_sequences")

    def first_token(seed: int) -> int:
        torch.manual_seed(seed)
        return model.generate(**ids, pad_token_id=tokenizer.pad_token_id, **kwargs)[0, -1].item()

    seeds = [seed for seed in range(400) if first_token(seed) == tokenizer.eos_token_id][:3]
    assert seeds, "this tiny model should sample eos first for some seed (about 2% of them)"
    for seed in seeds:
        torch.manual_seed(seed)
        final = list(app.stream_completion(model, tokenizer, prompt, 0.9, 40, 0.9, MAX_NEW_TOKENS))[-1]
        assert final.startswith(prompt) and len(final) > len(prompt), seed


def test_closing_the_stream_stops_generation(loaded):
    model, tokenizer = loaded
    stream = app.stream_completion(model, tokenizer, PROMPT, temperature=0, max_new_tokens=100_000)
    first = next(stream)
    start = time.perf_counter()
    stream.close()  # what Gradio does when the page goes away: the generating thread must end too
    assert time.perf_counter() - start < 10
    assert first.startswith(PROMPT)


def test_a_prompt_longer_than_the_context_is_cut_and_said(loaded):
    model, tokenizer = loaded
    prompt = "Казан шәһәре зур һәм матур. " * 60
    notes = []
    steps = list(app.stream_completion(model, tokenizer, prompt, 0, max_new_tokens=8, on_note=notes.append))
    assert len(notes) == 1 and "keeping its last" in notes[0]
    assert steps[-1].startswith(prompt) and len(steps[-1]) > len(prompt)  # the page shows the whole prompt


def test_build_demo_has_the_complete_endpoint(loaded):
    demo = app.build_demo(*loaded)
    names = [dep.api_name for dep in demo.fns.values()]
    assert "complete" in names


def test_main_reports_a_missing_model(tmp_path, capsys):
    assert app.main(["--model", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the served page


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """`python app.py --model DIR --port P` in a subprocess; yields its URL once the page answers."""
    port = free_port()
    log = tmp_path_factory.mktemp("app-log") / "app.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--model", str(model_dir), "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"app.py did not serve {url}:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.slow
def test_gradio_client_greedy_equals_generate(server, loaded):
    from gradio_client import Client

    client = Client(server, verbose=False)
    text = client.predict(PROMPT, 0, 50, 0.95, MAX_NEW_TOKENS, api_name="/complete")
    assert text.startswith(PROMPT) and len(text) > len(PROMPT)
    assert text == greedy_reference(loaded, PROMPT, MAX_NEW_TOKENS)
    # the job streams: greedy decoding is deterministic, so the number of updates is known in advance (a
    # sampled continuation may end after one token and stream once: no assertion may hang on that luck)
    model, tokenizer = loaded
    local = list(app.stream_completion(model, tokenizer, PROMPT, temperature=0, max_new_tokens=MAX_NEW_TOKENS))
    assert len(local) > 1
    job = client.submit(PROMPT, 0, 50, 0.95, MAX_NEW_TOKENS, api_name="/complete")
    assert job.result(timeout=60) == text
    assert len(job.outputs()) > 1 and job.outputs()[-1] == text
    # sampling answers too
    sampled = client.predict("Казан шәһәре", 0.9, 40, 0.9, MAX_NEW_TOKENS, api_name="/complete")
    assert sampled.startswith("Казан шәһәре")


def browser_or_skip():
    """(chromium, chromedriver) paths, or skip saying what is missing."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("headless browser test needs Debian's chromium and chromium-driver (apt-get install -y chromium "
                    "chromium-driver)")  # fmt: skip
    return chromium, driver


@pytest.mark.slow
def test_browser_types_a_prompt_and_reads_the_continuation(server, tmp_path):
    chromium, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-dev-shm-usage", "--window-size=1280,860", "--lang=en-US"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.set_page_load_timeout(30)
        browser.get(server)
        wait = WebDriverWait(browser, 30)
        prompt_box = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#prompt textarea"))
        prompt_box.clear()
        prompt_box.send_keys("Князь Андрей")
        browser.find_element(By.CSS_SELECTOR, "button#generate").click()
        output = browser.find_element(By.CSS_SELECTOR, "#output textarea")

        def grown(b):
            value = output.get_attribute("value") or ""
            return value if len(value) > len("Князь Андрей") else False

        text = wait.until(grown)
        assert text.startswith("Князь Андрей")
        # let the stream finish (the value stops changing) before the screenshot
        last, stable_since = None, time.monotonic()
        while time.monotonic() - stable_since < 1.0 and time.monotonic() < stable_since + 30:
            value = output.get_attribute("value")
            if value != last:
                last, stable_since = value, time.monotonic()
            time.sleep(0.2)
        assert last.startswith("Князь Андрей") and len(last) >= len(text)
        shot = tmp_path / "demo.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        if os.environ.get("APP_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["APP_SCREENSHOT"])
        # offline: every request the page made went to the local server
        import json

        hosts = set()
        for entry in browser.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                url = message["params"]["request"]["url"]
                if url.startswith(("http://", "https://", "ws://", "wss://")):
                    hosts.add(url.split("/")[2])
        assert hosts and hosts <= {server.split("/")[2]}, f"the page reached beyond the local server: {hosts}"
    finally:
        browser.quit()
