"""``tessera serve``: the OpenAI wire format over the simulated wafer, as clients see it.

A server started as a user would (``tessera serve --model seeded``, the 2-layer byte
model, on 127.0.0.1 at a free port) answers the official ``openai`` client with the
tokens ``tessera run`` makes for the same prompt, whole and streamed; concurrent clients
each get their tokens alone; every bad input gets its 4xx with an OpenAI-style error
body, and the server answers after; the chat page, in Debian's chromium, streams an
answer and shows its tokens/s.  A server in this process, its engine held until the
queue is full, shows the 429 and the queued requests on the wafer together.  Eight
clients, each arriving while the others decode, get their tokens alone.
Every wait is bounded.
"""

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from host import mapper, serve, serve_engine, workload
from host.bench import serve as bench_serve
from host.cli import main
from host.wafer import WaferShape
from rtl.params import preset

MODEL = "seeded"
PROMPT = "Hi"
TOKENS = 4
SERVER = ["serve", "--model", MODEL, "--wafer", "1x1", "--tokens", str(TOKENS)]
#: Seconds any one wait may take: a server starting, a request, the page's answer.
BOUND = 60


def _wait_until_serving(url, process=None):
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"tessera serve exited: {process.stderr.read()}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {BOUND} s")


@pytest.fixture(scope="module")
def server():
    """The base URL of ``tessera serve`` in its own process, on a free port it picks."""
    process = subprocess.Popen([sys.executable, "-m", "host.cli", *SERVER, "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = threading.Thread(target=lambda: first_line.append(process.stdout.readline()))
        first_line = []
        ready.start()
        ready.join(BOUND)
        url = re.search(r"(http://127\.0\.0\.1:[0-9]+)/$", first_line[0].strip()) \
            if first_line else None
        assert url, f"tessera serve did not say where it serves: {first_line}"
        _wait_until_serving(url[1], process)
        yield url[1]
    finally:
        process.terminate()
        process.wait(timeout=BOUND)


@pytest.fixture(scope="module")
def run_alone(tmp_path_factory):
    """``tessera run``'s report for PROMPT on the server's wafer and model."""
    report = tmp_path_factory.mktemp("run") / "run.json"
    subprocess.run([sys.executable, "-m", "host.cli", "run", "--model", MODEL, "--wafer", "1x1",
                    "--prompt", PROMPT, "--tokens", str(TOKENS), "--json", str(report)],
                   check=True, capture_output=True, timeout=BOUND)
    return json.loads(report.read_text())


def _client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=BOUND, max_retries=0)


def test_the_openai_client_gets_the_tokens_of_tessera_run(server, run_alone):
    client = _client(server)
    assert [model.id for model in client.models.list()] == [MODEL]
    completion = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=TOKENS)
    chat = client.chat.completions.create(model=MODEL, max_tokens=TOKENS, messages=[
        {"role": "system", "content": "not the prompt"}, {"role": "user", "content": PROMPT}])
    pieces, last = [], None
    for chunk in client.chat.completions.create(
            model=MODEL, max_tokens=TOKENS, stream=True,
            messages=[{"role": "user", "content": PROMPT}]):
        pieces.append(chunk.choices[0].delta.content or "")
        last = chunk
    answers = {"completion": (completion.choices[0].text, completion.model_extra),
               "chat": (chat.choices[0].message.content, chat.model_extra),
               "stream": ("".join(pieces), last.model_extra)}
    for name, (text, extra) in answers.items():
        figures = extra["tessera"]
        assert (text, figures["tokens"]) == (run_alone["text"], run_alone["tokens"]), name
        # Alone, the same run as tessera run's but for the layout (the server's splits
        # attention, for many users): the figures are the wafer's, not made up.
        assert figures["users_in_flight"] == 1 and figures["other_users_in_flight"] == 0, name
        assert figures["tokens_per_second"] == pytest.approx(
            figures["clock_hz"] / figures["cycles_per_token"]), name
        assert 0 < figures["time_to_first_token_cycles"] < figures["simulated_cycles"], name
    assert completion.usage.completion_tokens == TOKENS
    assert last.choices[0].finish_reason == "length"
    # The same request again on the running wafer: the same cycles.  The first request on
    # the fresh wafer also waited for the first tile to set its tasks up (six
    # instructions: tests/test_running_wafer.py).
    cycles = [answers[name][1]["tessera"]["simulated_cycles"]
              for name in ("completion", "chat", "stream")]
    assert cycles[1] == cycles[2] and 0 < cycles[0] - cycles[1] <= 6, cycles


def test_concurrent_clients_each_get_their_tokens_alone(server):
    prompts = ["abc", "Hello", "xyz"]
    client = _client(server)

    def tokens(prompt):
        answer = client.completions.create(model=MODEL, prompt=prompt, max_tokens=TOKENS)
        return answer.model_extra["tessera"]["tokens"]

    alone = [tokens(prompt) for prompt in prompts]
    with ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(tokens, prompts))
    assert together == alone
    assert len(set(map(tuple, alone))) == len(prompts)     # the prompts tell apart


def _post(url, path, body):
    """``(status, JSON body)`` of a POST of ``body`` (bytes, or an object sent as JSON)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=BOUND) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


COMPLETIONS, CHAT = "/v1/completions", "/v1/chat/completions"
USER = [{"role": "user", "content": PROMPT}]


@pytest.mark.parametrize("path, body, status, param, message", [
    (COMPLETIONS, b"{\"prompt\": ", 400, None, "the body is not JSON"),
    (COMPLETIONS, b"[\"Hi\"]", 400, None, "must be a JSON object"),
    (COMPLETIONS, {"model": MODEL}, 400, "prompt", "prompt is missing"),
    (COMPLETIONS, {"prompt": ""}, 400, "prompt", "the prompt is empty"),
    (COMPLETIONS, {"prompt": ["a", "b"]}, 400, "prompt", "one prompt a request"),
    (COMPLETIONS, {"prompt": "x" * 65}, 400, "prompt", "more than the context of 64"),
    (COMPLETIONS, {"prompt": PROMPT, "model": "gpt-4"}, 404, "model", "unknown model 'gpt-4'"),
    (COMPLETIONS, {"prompt": PROMPT, "max_tokens": 0}, 400, "max_tokens", "at least 1, not 0"),
    (COMPLETIONS, {"prompt": PROMPT, "max_tokens": -3}, 400, "max_tokens", "at least 1, not -3"),
    (COMPLETIONS, {"prompt": PROMPT, "max_tokens": 64}, 400, "max_tokens",
     "take 65 positions, more than the context of 64"),
    (COMPLETIONS, {"prompt": PROMPT, "max_tokens": "four"}, 400, "max_tokens", "whole number"),
    (COMPLETIONS, {"prompt": PROMPT, "temperature": 0.7}, 400, "temperature",
     "decodes greedily"),
    (COMPLETIONS, {"prompt": PROMPT, "stream": "yes"}, 400, "stream", "true or false"),
    (COMPLETIONS, {"prompt": PROMPT, "n": 2}, 400, "n", "n must be 1"),
    (CHAT, {"messages": []}, 400, "messages", "non-empty list"),
    (CHAT, {"messages": [{"role": "system", "content": "Hi"}]}, 400, "messages",
     "no user message"),
    (CHAT, {"messages": [{"role": "user", "content": ""}]}, 400, "messages",
     "the prompt is empty"),
    (CHAT, {"messages": USER, "model": "llama"}, 404, "model", "unknown model"),
    (CHAT, {"messages": USER, "temperature": 1}, 400, "temperature", "decodes greedily"),
])
def test_bad_input_gets_a_4xx_and_the_server_serves_on(server, path, body, status, param,
                                                       message):
    got, answer = _post(server, path, body)
    assert got == status, answer
    error = answer["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert message in error["message"] and error["param"] == param
    got, answer = _post(server, COMPLETIONS, {"prompt": PROMPT, "max_tokens": 1})
    assert got == 200 and answer["usage"]["completion_tokens"] == 1


def _wait_for(condition, what):
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {BOUND} s"
        time.sleep(0.05)


def _in_process(engine):
    """A server in this process over ``engine`` (not started: the test starts it)."""
    return serve.in_thread(engine, workload.load(MODEL), TOKENS)


LAYOUT = {"split_attention": True, "ffn_tiles": None, "head_tiles": None}


def test_the_queue_bound_answers_429_and_the_queued_run_together():
    """The engine held until three requests wait (the queue's bound): a fourth gets 429;
    a stream whose client goes away leaves the queue, and so does a whole answer's whose
    client gives up; then the other two join the wafer together, each with the tokens of
    its prompt alone."""
    work = workload.load(MODEL)
    reference = work.reference()
    shape = WaferShape((1, 1), (4, 4), preset("default"))
    engine = serve_engine.WaferEngine(reference, shape, users=2, queue_bound=3, layout=LAYOUT)
    with _in_process(engine) as url:
        client = _client(url)
        prompts = ["Wafer", "tessera"]
        with ThreadPoolExecutor(len(prompts)) as pool:
            answers = [pool.submit(client.completions.create, model=MODEL, prompt=prompt,
                                   max_tokens=TOKENS) for prompt in prompts]
            _wait_for(lambda: engine.queued == 2, "two requests queued")
            stream = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=TOKENS,
                                               stream=True)
            _wait_for(lambda: engine.queued == 3, "the stream queued")
            with pytest.raises(openai.RateLimitError, match="the queue holds 3"):
                client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=TOKENS)
            stream.close()
            _wait_for(lambda: engine.queued == 2, "the stream's request out of the queue")
            impatient = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=1,
                                      max_retries=0)
            with pytest.raises(openai.APITimeoutError):
                impatient.completions.create(model=MODEL, prompt=PROMPT, max_tokens=TOKENS)
            _wait_for(lambda: engine.queued == 2, "the gone client's request out of the queue")
            engine.start()
            figures = [answer.result(timeout=BOUND).model_extra["tessera"] for answer in answers]
        for prompt, figure in zip(prompts, figures):
            assert figure["tokens"] == reference.generate(work.encode(prompt), TOKENS)[0]
            assert figure["users_in_flight"] == 2 and figure["other_users_in_flight"] == 1
        assert client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=1) \
            .model_extra["tessera"]["users_in_flight"] == 1


def test_a_client_gone_mid_stream_frees_its_slot_and_the_other_runs_on():
    """Two slots: a stream of 60 tokens beside one of 30; its client closes it after the
    first token.  Its request ends on the wafer at its next token, so a third request
    takes its slot long before either stream's tokens would have freed one (without
    the cancel, it waits for the 30: tested); the stream beside gets its tokens alone."""
    work = workload.load(MODEL)
    reference = work.reference()
    shape = WaferShape((1, 1), (4, 4), preset("default"))
    engine = serve_engine.WaferEngine(reference, shape, users=2, queue_bound=3, layout=LAYOUT)
    engine.start()
    with _in_process(engine) as url:
        client = _client(url)
        beside = iter(client.completions.create(model=MODEL, prompt="abc", max_tokens=30,
                                                stream=True))
        next(beside)                                     # on the wafer
        gone = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=60,
                                         stream=True)
        next(iter(gone))
        gone.close()
        third = client.completions.create(model=MODEL, prompt="xyz", max_tokens=TOKENS) \
            .model_extra["tessera"]
        last = list(beside)[-1].model_extra["tessera"]
    assert third["tokens"] == reference.generate(work.encode("xyz"), TOKENS)[0]
    assert last["tokens"] == reference.generate(work.encode("abc"), 30)[0]
    assert third["admitted_cycle"] < 20 * last["cycles_per_token"], (third, last)


def test_an_engine_handle_yields_its_tokens_then_holds_the_figures():
    """The seam the HTTP side is built on, without it: requests submitted before the
    engine starts join the wafer together, each handle yielding its reference tokens; a
    request beyond the context is refused at submission."""
    work = workload.load(MODEL)
    reference = work.reference()
    shape = WaferShape((1, 1), (4, 4), preset("default"))
    engine = serve_engine.WaferEngine(reference, shape, users=3, queue_bound=3,
                                      layout={"split_attention": True})
    prompts, counts = [work.encode("abc"), work.encode("Hello")], [2, 3]
    handles = [engine.submit(prompt, count) for prompt, count in zip(prompts, counts)]
    with pytest.raises(serve_engine.EngineError, match="more than the context of 64"):
        engine.submit(work.encode("x" * 64), 2)
    engine.start()
    try:
        for handle, prompt, count in zip(handles, prompts, counts):
            assert handle.figures is None
            assert list(handle) == reference.generate(prompt, count)[0]
            assert handle.figures.users_in_flight == 2
            assert handle.figures.time_to_first_token_cycles < handle.figures.simulated_cycles
    finally:
        engine.close()


def test_the_engine_refuses_more_users_than_the_wafer_holds():
    work = workload.load(MODEL)
    shape = WaferShape((1, 1), (4, 4), preset("default"))
    with pytest.raises(mapper.MapError, match="need more KV cache"):
        serve_engine.WaferEngine(work.reference(), shape, users=12, queue_bound=1,
                                 layout={"split_attention": True})


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "--port must be 0 to 65535, not 70000"),
    (["--queue", "-1"], "--queue must be 0 or more, not -1"),
    (["--users", "0"], "--users must be at least 1, not 0"),
    (["--users", "12"], "12 users at a context of 64: 12 users need more KV cache"),
    (["--context", "65"], "--context 65 exceeds the model's context of 64"),
    (["--tokens", "0"], "--tokens must be at least 1"),
    (["--port", "{taken}"], "Address already in use"),
    (["--host", "192.0.2.1"], "cannot listen on 192.0.2.1 port 8000"),   # not this machine's
])
def test_serve_refuses_bad_options_before_serving(capsys, args, message):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        args = [port if arg == "{taken}" else arg for arg in args]
        assert main(["serve", "--model", MODEL, "--wafer", "1x1", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_the_page_streams_an_answer_and_its_tokens_per_second(server, run_alone):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    expected = _client(server).completions.create(model=MODEL, prompt=PROMPT,
                                                  max_tokens=TOKENS).model_extra["tessera"]
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.set_page_load_timeout(BOUND)
        driver.get(server + "/")
        driver.find_element(By.ID, "prompt").send_keys(PROMPT)
        count = driver.find_element(By.ID, "max-tokens")
        count.clear()
        count.send_keys(str(TOKENS))
        driver.find_element(By.ID, "send").click()
        WebDriverWait(driver, BOUND).until(
            lambda d: d.find_element(By.ID, "speed").text or d.find_element(By.ID, "error").text)
        text = lambda id: driver.find_element(By.ID, id).get_attribute("textContent")
        assert text("error") == ""
        assert text("answer") == run_alone["text"]
        assert text("speed") == f"{round(expected['tokens_per_second'])} T/s"
        assert text("users") == "users in flight: 1"
    finally:
        driver.quit()


def test_eight_clients_arriving_one_by_one_each_get_their_tokens_alone():
    """``tessera bench serve``'s clients, over HTTP: each starts when the one before it
    has its first token, so that it joins a wafer on which the others decode.  Every
    client gets its prompt's tokens alone, and the aggregate the ``tessera`` figures
    show (the cycle each token left the wafer) rises with the clients: a 3-layer model,
    10 pipeline stages, holds 8 without slowing them much."""
    work = workload.load(MODEL, layers=3)
    shape = WaferShape((1, 1), (4, 4), preset("default"))
    document = bench_serve.run(work, shape, [1, 2, 8], 30,
                               {"split_attention": True, "ffn_tiles": None, "head_tiles": None},
                               progress=lambda line: None)
    assert document["pipeline_stages"] == 10
    points = document["points"]
    assert [point["users"] for point in points] == [1, 2, 8]
    for point in points:
        assert point["match_reference"], point["users"]
        assert point["users_in_flight"] == point["users"]
        admitted = [client["admitted_cycle"] for client in point["clients"]]
        firsts = [client["token_cycles"][0] for client in point["clients"]]
        assert all(a < b for a, b in zip(firsts, admitted[1:])), "arrivals one by one"
    aggregate = [point["aggregate_tokens_per_cycle"] for point in points]
    one = points[0]["per_user_tokens_per_cycle"]
    assert aggregate[0] < aggregate[1] < aggregate[2], aggregate
    # While all 8 decode (the last joined before the first finished): 8 users' worth.
    last_first = max(client["token_cycles"][0] for client in points[2]["clients"])
    assert all(client["token_cycles"][-1] > last_first for client in points[2]["clients"])
    assert points[2]["all_generating_at_once"]
    assert aggregate[2] > 0.85 * 8 * one, (aggregate[2], one)
