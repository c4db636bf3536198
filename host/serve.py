"""``tessera serve``'s HTTP side: the OpenAI wire format over an :class:`host.serve_engine.Engine`.

``POST /v1/completions`` and ``POST /v1/chat/completions`` (with ``stream: true``:
server-sent events ending ``data: [DONE]``), ``GET /v1/models`` and ``GET /``, a chat
page.  Every answer carries a ``tessera`` object with the wafer's figures
(:class:`host.serve_engine.Figures`) and the generated token ids.  Decoding is greedy:
a ``temperature`` other than 0 is refused.  Bad input gets a 4xx with an
OpenAI-style error body; a full queue, 429.
"""

import contextlib
import json
import socket
import threading
import time
import uuid
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from host.serve_engine import EngineError, QueueFull
from host.workload import WorkloadError

__all__ = ["app", "in_thread"]

PAGE = Path(__file__).with_name("serve_page.html")
#: How often a stream waiting for its tokens checks that its client is still there.
DISCONNECT_POLL_SECONDS = 0.5
#: Seconds :func:`in_thread` waits for its server to start or to stop.
START_STOP_SECONDS = 60


class BadRequest(Exception):
    """A request answered with an OpenAI-style error body."""

    def __init__(self, status, message, param=None, code=None,
                 kind="invalid_request_error"):
        super().__init__(message)
        self.status, self.param, self.code, self.kind = status, param, code, kind

    def body(self):
        return {"error": {"message": str(self), "type": self.kind, "param": self.param,
                          "code": self.code}}

    def response(self):
        return JSONResponse(self.body(), status_code=self.status)


class Disconnected(Exception):
    """The client went away while its request waited."""


def app(engine, work, default_max_tokens):
    """The service of ``engine`` for the model of ``work`` (:class:`host.workload.Workload`:
    its name, tokenizer and text); a request without ``max_tokens`` gets
    ``default_max_tokens``, cut to the context."""
    service = FastAPI(title="tessera", docs_url=None, redoc_url=None, openapi_url=None)
    page = PAGE.read_text()

    @service.exception_handler(BadRequest)
    async def bad_request(_, error):
        return error.response()

    @service.get("/", response_class=HTMLResponse)
    async def chat_page():
        return page

    @service.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_model_card(work, engine)]}

    @service.post("/v1/completions")
    async def completions(request: Request):
        body = await _body(request)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadRequest(400, "prompt must be a string (one prompt a request)"
                             if prompt is not None else "prompt is missing", "prompt")
        return await _answer(request, body, prompt, chat=False)

    @service.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await _body(request)
        return await _answer(request, body, _last_user_message(body.get("messages")),
                             chat=True)

    async def _answer(request, body, text, chat):
        _check_model(body.get("model"), work)
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise BadRequest(400, f"stream must be true or false, not {stream!r}", "stream")
        if body.get("n", 1) != 1:
            raise BadRequest(400, f"n must be 1 (one answer a request), not {body['n']!r}", "n")
        max_tokens = _max_tokens(body, "max_completion_tokens" if chat else None)
        _check_greedy(body)
        if not text:
            raise BadRequest(400, "the prompt is empty", "messages" if chat else "prompt")
        try:
            prompt = work.encode(text)
            handle = engine.submit(prompt, max_tokens or min(
                default_max_tokens, engine.context - len(prompt) + 1))
        except WorkloadError as error:
            raise BadRequest(400, str(error), "messages" if chat else "prompt") from None
        except EngineError as error:
            param = "messages" if chat and error.param == "prompt" else error.param
            raise BadRequest(400, str(error), param, error.code) from None
        except QueueFull as error:
            raise BadRequest(429, str(error), None, "queue_full",
                             "rate_limit_exceeded") from None
        answer = _Answer(work, handle, chat, request)
        if stream:
            return StreamingResponse(answer.events(), media_type="text/event-stream")
        try:
            while await answer.next_token() is not None:
                pass
        except Disconnected:
            handle.cancel()
            raise BadRequest(499, "the client went away") from None
        except Exception as error:
            raise BadRequest(500, f"the wafer failed: {error}", kind="server_error") from None
        return answer.whole(handle.tokens, handle.figures)

    return service


@contextlib.contextmanager
def in_thread(engine, work, default_max_tokens):
    """:func:`app` served by uvicorn in a thread of this process, on 127.0.0.1 at a free
    port: yields its base URL once it serves; on the way out it stops and the engine is
    closed.  The caller starts the engine (or holds it, to fill its queue)."""
    import uvicorn
    listening = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app(engine, work, default_max_tokens),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_STOP_SECONDS
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"the server did not start in {START_STOP_SECONDS} s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=START_STOP_SECONDS)
        engine.close()
        listening.close()


class _Answer:
    """One request's answer, whole or as server-sent events."""

    def __init__(self, work, handle, chat, connection):
        self.work, self.handle, self.chat, self.connection = work, handle, chat, connection
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())

    def _envelope(self, choices, chunk=False, **extra):
        kind = ("chat.completion" + (".chunk" if chunk else "")) if self.chat \
            else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created,
                "model": self.work.name, "choices": choices, **extra}

    def _finish_reason(self, tokens):
        return "stop" if self.work.ended(tokens) else "length"

    def _tessera(self, tokens, figures):
        return {**figures.to_dict(), "tokens": tokens}

    def whole(self, tokens, figures):
        text = self.work.text(tokens, self.handle.prompt)
        choice = {"index": 0, "logprobs": None, "finish_reason": self._finish_reason(tokens)}
        choice.update({"message": {"role": "assistant", "content": text}} if self.chat
                      else {"text": text})
        prompt_tokens = len(self.handle.prompt)
        return self._envelope([choice], usage={
            "prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
            "total_tokens": prompt_tokens + len(tokens)},
            tessera=self._tessera(tokens, figures))

    def _chunk(self, piece=None, finish_reason=None, **extra):
        """An event with ``piece`` of text (None: none; for chat, the empty piece is the
        first event, which names the role)."""
        choice = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
        if self.chat:
            choice["delta"] = ({} if piece is None else {"role": "assistant", "content": ""}
                               if piece == "" else {"content": piece})
        else:
            choice["text"] = piece or ""
        return "data: " + json.dumps(self._envelope([choice], chunk=True, **extra)) + "\n\n"

    async def events(self):
        """The answer's pieces of text as they are released, then a last chunk with the
        finish reason and the figures, then ``[DONE]``.  A client that goes away cancels
        its request."""
        try:
            if self.chat:
                yield self._chunk("")
            pieces = _Pieces(self.work, self.handle.prompt)
            try:
                while (token := await self.next_token()) is not None:
                    if piece := pieces.add(token):
                        yield self._chunk(piece)
            except Disconnected:
                return
            except Exception as error:
                failure = BadRequest(500, f"the wafer failed: {error}", kind="server_error")
                yield "data: " + json.dumps(failure.body()) + "\n\n"
            else:
                if piece := pieces.rest():
                    yield self._chunk(piece)
                tokens = self.handle.tokens
                yield self._chunk(None, self._finish_reason(tokens),
                                  tessera=self._tessera(tokens, self.handle.figures))
            yield "data: [DONE]\n\n"
        finally:
            self.handle.cancel()

    async def next_token(self):
        """The handle's next token, or None at the end; :class:`Disconnected` if the client
        goes away while it waits (Starlette would notice only when it sends)."""
        while True:
            try:
                return await run_in_threadpool(self.handle.next_token, DISCONNECT_POLL_SECONDS)
            except TimeoutError:
                if await self.connection.is_disconnected():
                    raise Disconnected from None


class _Pieces:
    """The text of the tokens so far, released in pieces that never change: a byte token
    that ends inside a UTF-8 character waits for the rest of it."""

    def __init__(self, work, prompt):
        self.work, self.prompt, self.tokens, self.sent = work, prompt, [], ""

    def add(self, token):
        self.tokens.append(token)
        text = self.work.text(self.tokens, self.prompt)
        if text.endswith("\ufffd") or not text.startswith(self.sent):
            return ""
        piece, self.sent = text[len(self.sent):], text
        return piece

    def rest(self):
        text = self.work.text(self.tokens, self.prompt)
        piece = text[len(self.sent):] if text.startswith(self.sent) else ""
        self.sent = text
        return piece


async def _body(request):
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(400, f"the body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "the body must be a JSON object")
    return body


def _model_card(work, engine):
    return {"id": work.name, "object": "model", "created": 0, "owned_by": "tessera",
            "context": engine.context, "users": engine.users, "queue": engine.queue_bound}


def _check_model(name, work):
    if name is not None and name != work.name:
        raise BadRequest(404, f"unknown model {name!r}: this server runs {work.name!r}",
                         "model", "model_not_found")


def _max_tokens(body, alias=None):
    """``max_tokens`` (or the chat API's newer ``alias``), None if not given."""
    value = body.get("max_tokens", body.get(alias) if alias else None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(400, f"max_tokens must be a whole number, not {value!r}", "max_tokens")
    if value < 1:
        raise BadRequest(400, f"max_tokens must be at least 1, not {value}", "max_tokens")
    return value


def _check_greedy(body):
    temperature = body.get("temperature")
    if temperature is None:
        return
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise BadRequest(400, f"temperature must be a number, not {temperature!r}",
                         "temperature")
    if temperature != 0:
        raise BadRequest(400, f"temperature {temperature:g}: the wafer decodes greedily, so "
                              f"only 0 (or none) is served", "temperature")


def _last_user_message(messages):
    """The text of the last message of role ``user``: a string, or the text parts of a
    list of content parts."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest(400, "messages must be a non-empty list", "messages")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(part.get("text", "") for part in content
                                  if isinstance(part, dict) and part.get("type") == "text")
            if not isinstance(content, str):
                raise BadRequest(400, "the user message's content must be text", "messages")
            return content
    raise BadRequest(400, "messages hold no user message: its content is the prompt",
                     "messages")
