"""REST API: ``python -m ser_core serve`` runs :func:`create_app` with uvicorn.

``POST /v1/predict``, ``POST /v1/timeline`` and ``POST /v1/segments`` take a multipart upload
in the field ``file`` (and optionally a saved :class:`~ser_core.inference.voice.Voice` in the
field ``voice``, and the speaker's neutral voice in repeated ``reference`` fields, at most
:data:`~ser_core.serve.limits.MAX_REFERENCES`, which add to it for that request only) and
answer with the same JSON as ``predict --json``,
``timeline --json`` and ``timeline --segments --json``;
``POST /v1/voice`` learns a speaker's voice from ``reference`` and ``recording`` uploads (adding
to the ``voice`` sent, if any) and answers it as JSON, which a client keeps and sends back: the
server holds no state between requests;
``GET /v1/stream`` is a WebSocket: live audio in, a verdict per utterance as each ends
(:mod:`ser_core.serve.stream`, which owns its protocol and limits);
``GET /v1/health`` and ``GET /v1/model`` describe the service. Every error is a JSON object
``{"error": sentence}`` with a fitting status: 413 for an upload over the limit (counted
while the body is read, never buffered whole), 415 for something that is not audio,
422 for audio that cannot be used or bad parameters (a recording over the duration limit, or
references over theirs, are refused from their headers, or as soon as decoding passes the
limit; a damaged voice, or one of another model), 503 with ``Retry-After`` when the server is
full or stopping.

Every request's work is bounded (:class:`~ser_core.serve.limits.Limits`): its
:class:`~ser_core.serve.limits.Budget`, the seconds of audio it asks to have judged, is counted
from the headers of its uploads before anything is decoded and before it waits for a slot. At
most ``slots`` recordings are analysed at once; requests over ``light_seconds`` (whatever the
route) take the heavy lane, at most all but one slot, so a burst of long work never starves
short predictions; the rest wait in a bounded queue. An analysis, its references included,
stops at the next block or window when its client disconnects or the server receives SIGTERM.

A route that takes uploads hands them to :func:`_analyse` with a job ``job(budget, *paths)``
that decodes them through the budget (:meth:`~ser_core.serve.limits.Budget.load`,
:meth:`~ser_core.serve.limits.Budget.load_references`) and passes ``budget.stop`` on.

The model and the default voice-activity model are loaded once, when the app is built (no
request pays for loading them, or keeps their memory); inference runs in the threadpool so the
event loop keeps answering while a long recording is analysed. FastAPI is imported only
here, so the rest of the package does not need it. (No ``from __future__ import annotations``:
FastAPI reads the endpoints' annotations at run time.)
"""

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from .. import audio
from ..errors import AudioError, BusyError, Cancelled, NotAudioError, ParameterError, SERError
from ..inference import result_row
from ..inference.utterances import DEFAULT_DETECTOR, DETECTORS, detector
from ..inference.voice import SOURCES, Voice
from .limits import LIMITS, REFERENCE_ADVICE, RETRY_AFTER_SECONDS, Budget, Heavier, Limits

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

    from ..inference import EmotionClassifier

__all__ = ["create_app", "serve", "sweep_stale_uploads", "DEFAULT_HOST", "DEFAULT_PORT"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
UPLOAD_PREFIX = "ser-upload-"  # temporary upload folders: ser-upload-<pid>-<random>
STALE_UPLOAD_SECONDS = 3600  # an upload folder without a live owner this old is swept at start-up
SHUTDOWN_GRACE_SECONDS = 3  # after SIGTERM, in-flight requests get this long to be answered
VOICE_PATH = "/v1/voice"
UPLOAD_PATHS = ("/v1/predict", "/v1/timeline", "/v1/segments", VOICE_PATH)
FIELD_TOO_LARGE = "Part exceeded maximum size"  # how Starlette refuses a text field over its limit (1 MiB)
COPY_CHUNK = 2**20
NON_AUDIO_TYPES = ("text/", "image/", "application/json", "application/xml", "application/pdf")
WS_MAX_SIZE_FACTOR = 4  # uvicorn drops WebSocket messages this many times over the stream limit unread


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


class UploadLimit:
    """ASGI middleware: 415 for an upload that is not multipart, 413 once the body passes the
    limit, 422 once it has more than ``limits.max_parts`` parts (``limits.max_voice_parts`` on
    ``POST /v1/voice``).

    The size is checked against ``Content-Length`` before anything is read and against the
    bytes actually received, so a chunked or lying request cannot push more through. Parts are
    counted by their boundaries as the body arrives, before any of them is parsed or saved;
    the rest of such a body (within the size limit) is read and dropped before the answer, so
    a client that sends its whole body first still reads the sentence.
    """

    def __init__(self, app: Any, *, limits: Limits, paths: tuple[str, ...] = UPLOAD_PATHS) -> None:
        self.app = app
        self.limits = limits
        self.max_bytes = limits.max_upload_bytes
        self.paths = paths

    def _too_large(self) -> str:
        return f"The upload is larger than {self.max_bytes / 2**20:g} MiB; send a shorter recording or a compressed format."

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        from fastapi import HTTPException

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not headers.get("content-type", "").lower().startswith("multipart/form-data"):
            fields = (
                "fields named 'reference' or 'recording'" if scope["path"] == VOICE_PATH else "a field named 'file'"
            )
            response = _json_error(415, f"Send the audio as a multipart/form-data upload in {fields}.")
            await response(scope, receive, send)
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await _json_error(413, self._too_large())(scope, receive, send)
            return
        received = 0
        parts = _PartCounter(headers["content-type"])
        if scope["path"] == VOICE_PATH:
            max_parts, too_many = self.limits.max_voice_parts, self.limits.too_many_voice_parts()
        else:
            max_parts, too_many = self.limits.max_parts, self.limits.too_many_parts()
        more = True  # the client has more of the body to send
        drain = False  # refused for its parts: read the rest before answering

        async def limited_receive() -> dict:
            nonlocal received, more, drain
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more = message.get("more_body", False)
                if received > self.max_bytes:
                    raise HTTPException(status_code=413, detail=self._too_large())
                if parts.count(message.get("body", b"")) > max_parts:
                    drain = True
                    raise HTTPException(status_code=422, detail=too_many)
            else:
                more = False
            return message

        async def drained_send(message: dict) -> None:
            nonlocal received, more
            while drain and more and received <= self.max_bytes and message["type"] == "http.response.start":
                rest = await receive()
                received += len(rest.get("body", b""))
                more = rest["type"] == "http.request" and rest.get("more_body", False)
            await send(message)

        await self.app(scope, limited_receive, drained_send)


class _PartCounter:
    """Counts the parts of a multipart body as its chunks arrive, by the boundary lines between them."""

    def __init__(self, content_type: str) -> None:
        fields = (p.strip() for p in content_type.split(";"))
        boundary = next((f.split("=", 1)[1].strip('"') for f in fields if f.startswith("boundary=")), "")
        self.delimiter = b"--" + boundary.encode("latin-1") if boundary else b""
        self.seen = 0  # boundary lines so far: one before each part, and one after the last
        self.tail = b""  # the end of the previous chunk, where a boundary line may begin

    def count(self, chunk: bytes) -> int:
        """Parts complete so far, this chunk included (each ends where the next boundary line begins)."""
        if not self.delimiter:
            return 0
        data = self.tail + chunk
        self.seen += data.count(self.delimiter)
        self.tail = data[max(0, len(data) - len(self.delimiter) + 1) :]
        return max(0, self.seen - 1)


def _check_upload(filename: str, content_type: str | None) -> str:
    """The suffix to give the temporary file; raises 415 for what is plainly not audio."""
    from fastapi import HTTPException

    suffix = Path(filename).suffix.lower()
    if suffix in audio.AUDIO_EXTENSIONS:
        return suffix
    kind = (content_type or "").lower()
    if suffix or kind.startswith(NON_AUDIO_TYPES):
        raise HTTPException(
            status_code=415,
            detail=f"'{filename}' is not a supported audio file; send {audio.FORMATS}.",
        )
    return ""  # no extension: let the decoders sniff the content


def _temp_name(filename: str, suffix: str) -> str:
    """The upload's own base name when it is a plain one, so error messages name the client's file."""
    name = Path(filename.replace("\\", "/")).name
    plain = name not in ("", ".", "..") and len(name) <= 200 and name.isprintable() and "/" not in name
    return name if plain else f"upload{suffix}"


async def _saved(upload: Any, count: Callable[[Path], None]) -> Path:
    """Copy an upload to a file in a fresh temporary folder (the caller removes it) and ``count``
    it in the request's budget from its header, off the event loop."""
    from starlette.concurrency import run_in_threadpool

    filename = upload.filename or "upload"
    suffix = _check_upload(filename, upload.content_type)
    folder = Path(tempfile.mkdtemp(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-"))
    path = folder / _temp_name(filename, suffix)

    def save() -> None:
        with open(path, "xb") as out:
            shutil.copyfileobj(upload.file, out, COPY_CHUNK)
        count(path)

    try:
        await run_in_threadpool(save)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path


def _schemas() -> dict[str, Any]:
    """The response models of the API (pydantic, imported with FastAPI)."""
    from pydantic import BaseModel, Field

    class Error(BaseModel):
        error: str = Field(description="one sentence: what is wrong and what to do")

    adapted_field = Field(
        None,
        description="what the verdict is relative to: 'reference' (a voice with reference speech), 'same-speaker' "
        "(a voice learned from enough of the speaker's recordings), or null (no voice, or one that knows too little)",
    )
    Adapted = Literal[SOURCES] | None

    class IntensityOut(BaseModel):
        level: Literal["normal", "strong"]
        strength: float = Field(ge=0.0, le=1.0, description="probability that the delivery is strong")

    intensity_field = Field(
        None, description="how strongly the emotion is expressed; null for neutral or a model without intensity"
    )

    class PredictionOut(BaseModel):
        path: str = Field(description="the uploaded file's name")
        emotion: str
        confidence: float
        probabilities: dict[str, float]
        intensity: IntensityOut | None = intensity_field
        adapted: Adapted = adapted_field

    class WindowOut(BaseModel):
        start: float
        end: float
        speech: bool
        emotion: str | None = None
        confidence: float | None = None
        probabilities: dict[str, float] | None = None
        intensity: IntensityOut | None = intensity_field

    class SummaryOut(BaseModel):
        emotion: str
        confidence: float
        probabilities: dict[str, float]
        intensity: IntensityOut | None = intensity_field

    class TimelineOut(BaseModel):
        path: str
        duration: float
        window: float
        hop: float
        summary: SummaryOut | None = Field(description="mean over windows with speech; null when none has any")
        shares: dict[str, float]
        windows: list[WindowOut]
        adapted: Adapted = adapted_field

    class SegmentsOut(BaseModel):
        path: str
        duration: float
        detector: str = Field(description="the voice-activity detector that found the utterances")
        summary: SummaryOut | None = Field(description="mean over utterances with a verdict; null when none has one")
        shares: dict[str, float]
        utterances: list[WindowOut] = Field(description="one row an utterance: its span in seconds and verdict")
        adapted: Adapted = adapted_field

    class SumsOut(BaseModel):
        count: int = Field(description="clips of speech summed")
        sum: list[float] = Field(description="their feature rows, summed")
        squares: list[float] | None = Field(None, description="their feature rows squared, summed")
        seconds: float = Field(description="seconds of speech")

    class SessionOut(SumsOut):
        recordings: int = Field(description="recordings the session's speech came from")
        probabilities: list[float] = Field(
            description="the default model's probabilities of the session's clips, summed, in the order of the labels"
        )

    class VoiceOut(BaseModel):
        format: int = Field(description="version of the saved voice")
        features: str = Field(description="fingerprint of the feature set it belongs to: a voice fits one model")
        source: Adapted = Field(
            description="what verdicts relative to it say in 'adapted': null while it knows too little to adapt to"
        )
        reference: SumsOut | None = Field(None, description="reference speech: the speaker's everyday voice")
        session: SessionOut | None = Field(None, description="same-speaker speech: recordings of the speaker")
        description: str = Field(description="a sentence for a person: what the voice learned, and whether it is used")

    class ModelOut(BaseModel):
        labels: list[str]
        version: str = Field(description="ser_core version")
        model: dict[str, Any] = Field(description="bundle: feature configuration, training configuration, versions")
        metrics: dict[str, Any]

    return {
        "Error": Error,
        "PredictionOut": PredictionOut,
        "TimelineOut": TimelineOut,
        "SegmentsOut": SegmentsOut,
        "VoiceOut": VoiceOut,
        "ModelOut": ModelOut,
    }


def _install_error_handlers(app: "FastAPI", limits: Limits) -> None:
    """Every error as ``{"error": sentence}``: HTTP errors, invalid requests, library errors, bugs."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if exc.status_code == 400 and str(exc.detail).startswith(FIELD_TOO_LARGE):  # our one text field is 'voice'
            return _json_error(413, limits.voice_too_large())
        return _json_error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Any:
        problems = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in exc.errors())
        return _json_error(422, f"The request is not valid ({problems}); see /docs for the expected form.")

    @app.exception_handler(SERError)
    async def ser_error(request: Request, exc: SERError) -> Any:
        if isinstance(exc, (BusyError, Cancelled)):
            return _json_error(503, str(exc), {"Retry-After": str(RETRY_AFTER_SECONDS)})
        if isinstance(exc, NotAudioError):
            return _json_error(415, str(exc))
        return _json_error(422 if isinstance(exc, (AudioError, ParameterError)) else 500, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Any:
        log.exception("unexpected error on %s", request.url.path)
        return _json_error(500, f"The server failed ({type(exc).__name__}); please report it with the file.")


class Gate:
    """The analysis slots of a server: ``limits.slots`` recordings at once, heavy requests (by
    their :class:`Budget`, whatever the route) in at most all but one of them, so a light
    request always finds a slot free of heavy work, and a bounded queue.

    A request that finds ``limits.max_waiting`` others waiting, or waits longer than
    ``limits.max_wait_seconds``, gets :class:`BusyError` (503 with ``Retry-After``). Every
    running analysis holds a stop event; :meth:`stop_all` sets them (SIGTERM).
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.slots)
        self._heavy = asyncio.Semaphore(max(1, limits.slots - 1))
        self.waiting = 0
        self.running: set[threading.Event] = set()
        self.stopping = threading.Event()

    @contextlib.asynccontextmanager
    async def slot(self, *, heavy: bool, stop: threading.Event | None = None) -> AsyncIterator[threading.Event]:
        """Wait for a slot; yields the analysis's stop event (``stop``, or a new one), and raises
        :class:`Cancelled` instead when it was set while the request waited (its client left)."""
        if self.stopping.is_set():
            raise Cancelled("The server is stopping; send the request again in a moment.")
        full = self._slots.locked() or (heavy and self._heavy.locked())
        if full and self.waiting >= self.limits.max_waiting:
            raise BusyError()
        held: list[asyncio.Semaphore] = []
        self.waiting += 1
        try:
            async with asyncio.timeout(self.limits.max_wait_seconds):
                for semaphore in (self._heavy, self._slots) if heavy else (self._slots,):
                    await semaphore.acquire()
                    held.append(semaphore)
        except TimeoutError:
            for semaphore in held:
                semaphore.release()
            raise BusyError() from None
        finally:
            self.waiting -= 1
        stop = stop if stop is not None else threading.Event()
        if self.stopping.is_set():
            stop.set()
        self.running.add(stop)
        try:
            if stop.is_set():
                raise Cancelled()
            yield stop
        finally:
            self.running.discard(stop)
            for semaphore in held:
                semaphore.release()

    def stop_all(self) -> None:
        """Stop every running analysis at its next window, and refuse new ones."""
        self.stopping.set()
        for stop in list(self.running):
            stop.set()


async def _watch_disconnect(request: Any, stop: threading.Event) -> None:
    """Set ``stop`` when the client goes away (the body is read by now, so the next message is that)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            stop.set()
            return


async def _analyse(
    request: Any,
    job: Callable[..., Any],
    *,
    recordings: list[Any] | None = None,
    references: list[Any] | None = None,
    timeline: tuple[float, float] | None = None,
) -> Any:
    """Run ``job(budget, *paths)`` on a request's uploads: the ``recordings`` (an analysis's
    ``file``) then the ``references``, for a timeline of ``(window, hop)`` when given.

    Each upload is saved and counted in the request's :class:`Budget` from its header: one over
    a limit is refused before anything is decoded and before the request waits for a slot. The
    budget chooses the lane; a light request whose audio turns out heavier than its headers said
    is run again in the heavy lane. The job runs in the threadpool, its ``budget.stop`` set when
    the client leaves (a request whose client left while it waited never starts); the files are
    removed whatever happens.
    """
    from fastapi import HTTPException
    from starlette.concurrency import run_in_threadpool

    gate: Gate = request.app.state.gate
    recordings, references = recordings or [], references or []
    clip_seconds = request.app.state.classifier.preprocessing.clip_seconds
    budget = Budget(gate.limits, references=len(references), recordings=len(recordings), clip_seconds=clip_seconds)
    if timeline is not None:
        budget.for_timeline(*timeline)
    paths: list[Path] = []
    try:
        for recording in recordings:
            paths.append(await _saved(recording, budget.add_recording))
        for reference in references:
            paths.append(await _saved(reference, budget.add_reference))
        heavy, stop = budget.heavy, threading.Event()
        watcher = asyncio.create_task(_watch_disconnect(request, stop))  # from now on: the body is read
        try:
            while True:
                async with gate.slot(heavy=heavy, stop=stop):
                    try:
                        return await run_in_threadpool(job, budget.start(stop, heavy=heavy), *paths)
                    except Heavier:
                        heavy = True  # its headers understated it: the heavy lane, from the start
        finally:
            watcher.cancel()
    except MemoryError:
        raise HTTPException(
            status_code=413, detail="The recording is too large to analyse here; cut it into parts."
        ) from None
    except (SERError, HTTPException):
        raise
    except Exception as e:  # a decoder bug is a bad file for the client, not a crash
        log.exception("analysis failed")
        raise AudioError(f"The file could not be analysed ({type(e).__name__}); check it is a valid recording.") from e
    finally:
        for path in paths:
            shutil.rmtree(path.parent, ignore_errors=True)


def sweep_stale_uploads(folder: str | os.PathLike[str] | None = None) -> int:
    """Remove upload folders left by servers that were killed mid-request: those whose process
    is gone, or (with no process id in the name) older than :data:`STALE_UPLOAD_SECONDS`.
    Returns how many were removed."""
    removed = 0
    for path in Path(folder or tempfile.gettempdir()).glob(f"{UPLOAD_PREFIX}*"):
        owner = path.name[len(UPLOAD_PREFIX) :].split("-", 1)[0]
        try:
            if owner.isdigit():
                if _alive(int(owner)):
                    continue
            elif time.time() - path.stat().st_mtime < STALE_UPLOAD_SECONDS:
                continue
            shutil.rmtree(path)
            removed += 1
        except OSError:
            continue  # another server's, or gone already
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _voice(clf: "EmotionClassifier", budget: Budget, references: tuple[Path, ...], voice: Voice | None) -> Any:
    """The voice a request's verdicts are relative to: the one it sent (or ``None``) with its
    reference uploads added; stateless: made per request, forgotten after it."""
    if not references:
        return voice
    return clf.calibrate(budget.load_references(references), audio.SAMPLE_RATE, voice=voice, stop=budget.stop)


async def _read_voice(clf: "EmotionClassifier", limits: Limits, field: Any) -> Voice | None:
    """The saved voice in a request's ``voice`` field (text, or a file), checked against the model
    before any upload is counted or decoded; ``None`` when the field is absent or empty. 413 over
    ``limits.max_voice_bytes``; 422 for one that is damaged or of another model."""
    from fastapi import HTTPException
    from starlette.concurrency import run_in_threadpool

    if field is None:
        return None
    whole = isinstance(field, str)  # a file is read only up to the limit: its size is then unknown
    data = field.encode() if whole else await field.read(limits.max_voice_bytes + 1)
    if len(data) > limits.max_voice_bytes:
        raise HTTPException(status_code=413, detail=limits.voice_too_large(len(data) if whole else None))
    if not data.strip():
        return None

    def read() -> Voice:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ParameterError("The saved voice is not valid JSON; calibrate again.") from None
        return clf.check_voice(Voice.from_json(text))

    return await run_in_threadpool(read)  # a voice is up to a few hundred kB of JSON: off the event loop


def create_app(
    classifier: "EmotionClassifier | None" = None,
    *,
    artifacts: str | os.PathLike[str] | None = None,
    limits: Limits = LIMITS,
) -> "FastAPI":
    """The API around ``classifier`` (default: the bundle in ``artifacts``, loaded now, once)."""
    from fastapi import FastAPI, File, Form, Query, Request, UploadFile

    from .. import __version__
    from ..inference import EmotionClassifier
    from ..inference.classifier import DEFAULT_HOP_SECONDS, MAX_WINDOW_SECONDS, MIN_HOP_SECONDS, check_timeline

    clf = classifier if classifier is not None else EmotionClassifier.load(artifacts)
    try:  # the default voice-activity model too, so the first /v1/segments does not load it
        detector(DEFAULT_DETECTOR)
    except SERError as e:  # not installed, or damaged: /v1/segments says so to whoever asks
        log.warning("the %s voice-activity detector is not available: %s", DEFAULT_DETECTOR, e)
    labels = list(clf.labels)
    schemas = _schemas()
    errors = {
        413: {"model": schemas["Error"], "description": "upload too large, or a voice over its limit"},
        415: {"model": schemas["Error"], "description": "not an audio upload"},
        422: {
            "model": schemas["Error"],
            "description": "unusable audio or parameters, a recording over the limit, or a voice that is damaged "
            "or of another model",
        },
        503: {"model": schemas["Error"], "description": "the server is full or stopping; see Retry-After"},
    }
    app = FastAPI(
        title="ser_core", version=__version__, description=f"Speech emotion recognition: {', '.join(labels)}."
    )
    app.add_middleware(UploadLimit, limits=limits)
    app.state.classifier = clf
    app.state.gate = Gate(limits)
    _install_error_handlers(app, limits)
    upload_help = (
        f"an audio file ({audio.FORMATS}), up to {limits.max_seconds / 60:g} minutes "
        f"and {limits.max_upload_bytes / 2**20:g} MiB"
    )
    window_help = f"seconds, from {audio.MIN_SPEECH_SECONDS} to {MAX_WINDOW_SECONDS:g}"
    hop_help = f"seconds, from {MIN_HOP_SECONDS} to the window"
    reference_help = (
        f"optional, repeatable up to {limits.max_references} times: recordings of the same speaker's everyday, "
        f"unemotional voice, at most {limits.max_reference_seconds:g} s together ({REFERENCE_ADVICE}); "
        "the verdict is then relative to that voice"
    )
    voice_help = (
        f"optional: a saved voice, the JSON that POST /v1/voice answers (as text, or a file), at most "
        f"{limits.max_voice_bytes / 1024:g} kB; the verdict is then relative to it (references sent too add to it "
        "for this request)"
    )
    VoiceField = Annotated[str | UploadFile | None, Form(description=voice_help)]

    @app.post(
        "/v1/predict", response_model=schemas["PredictionOut"], responses=errors, summary="Emotion of one recording"
    )
    async def predict(
        request: Request,
        file: Annotated[UploadFile, File(description=upload_help)],
        reference: Annotated[list[UploadFile] | None, File(description=reference_help)] = None,
        voice: VoiceField = None,
    ) -> dict:
        given = await _read_voice(clf, limits, voice)

        def job(budget: Budget, path: Path, *references: Path) -> tuple:
            y = budget.load(path)
            voice = _voice(clf, budget, references, given)
            return clf.predict(y, audio.SAMPLE_RATE, voice=voice, stop=budget.stop), voice

        prediction, voice = await _analyse(request, job, recordings=[file], references=reference)
        return result_row(prediction, voice, file.filename or "")

    @app.post("/v1/timeline", response_model=schemas["TimelineOut"], responses=errors, summary="Emotion over time")
    async def timeline(
        request: Request,
        file: Annotated[UploadFile, File(description=upload_help)],
        window: Annotated[float, Query(description=window_help)] = clf.preprocessing.clip_seconds,
        hop: Annotated[float, Query(description=hop_help)] = DEFAULT_HOP_SECONDS,
        reference: Annotated[list[UploadFile] | None, File(description=reference_help)] = None,
        voice: VoiceField = None,
    ) -> dict:
        check_timeline(window, hop)
        given = await _read_voice(clf, limits, voice)

        def job(budget: Budget, path: Path, *references: Path) -> tuple:
            y = budget.load(path)  # refused over max_windows
            voice = _voice(clf, budget, references, given)
            return clf.timeline(y, audio.SAMPLE_RATE, window=window, hop=hop, voice=voice, stop=budget.stop), voice

        result, voice = await _analyse(request, job, recordings=[file], references=reference, timeline=(window, hop))
        return result_row(result, voice, file.filename or "")

    @app.post("/v1/segments", response_model=schemas["SegmentsOut"], responses=errors, summary="Emotion per utterance")
    async def segments(
        request: Request,
        file: Annotated[UploadFile, File(description=upload_help)],
        detector: Annotated[Literal[DETECTORS], Query(description="voice-activity detector")] = DEFAULT_DETECTOR,
        reference: Annotated[list[UploadFile] | None, File(description=reference_help)] = None,
        voice: VoiceField = None,
    ) -> dict:
        given = await _read_voice(clf, limits, voice)

        def job(budget: Budget, path: Path, *references: Path) -> tuple:
            y = budget.load(path)
            voice = _voice(clf, budget, references, given)
            return clf.utterances(y, audio.SAMPLE_RATE, detector=detector, voice=voice, stop=budget.stop), voice

        result, voice = await _analyse(request, job, recordings=[file], references=reference)
        return result_row(result, voice, file.filename or "")

    recording_help = (
        f"optional, repeatable up to {limits.max_recordings} times: recordings of the speaker, such as those to be "
        f"judged (learned as same-speaker speech; whatever emotion they carry), at most "
        f"{limits.max_seconds / 60:g} minutes together"
    )
    learn_help = (
        "optional: a saved voice (the JSON this route answered before, as text or a file), to add to; "
        f"at most {limits.max_voice_bytes / 1024:g} kB"
    )

    @app.post(
        VOICE_PATH,
        response_model=schemas["VoiceOut"],
        response_model_exclude_unset=True,
        responses=errors,
        summary="Learn a speaker's voice",
        description=(
            "Learns a speaker's voice from their everyday voice read neutrally (`reference`) and from "
            "recordings of them (`recording`), adding to a saved `voice` when one is sent, and answers the "
            "voice as JSON: keep it, and send it in the `voice` field of /v1/predict, /v1/timeline, /v1/segments "
            "or back here with more speech. It holds sums of features, never audio; the server keeps nothing. "
            "Verdicts adapt to it once `source` is not null: at once with reference speech, or once the "
            "recordings hold enough speech (`description` says how much more)."
        ),
    )
    async def learn_voice(
        request: Request,
        reference: Annotated[list[UploadFile] | None, File(description=reference_help)] = None,
        recording: Annotated[list[UploadFile] | None, File(description=recording_help)] = None,
        voice: Annotated[str | UploadFile | None, Form(description=learn_help)] = None,
    ) -> dict:
        given = await _read_voice(clf, limits, voice)  # checked against the model, when sent
        if given is None:
            clf.check_voice(clf.voice())  # a model without an adapted variant: said before any upload is read
        recordings, references = recording or [], reference or []
        if not recordings and not references and given is None:
            raise ParameterError(
                "Send recordings of the speaker in 'reference' (their everyday voice, read neutrally) or in "
                "'recording' (recordings of them to be judged), and optionally their saved voice in 'voice'."
            )

        def job(budget: Budget, *paths: Path) -> Voice:
            voice = _voice(clf, budget, paths[len(recordings) :], given) or clf.voice()
            heard = voice.recordings
            for path in paths[: len(recordings)]:  # one at a time: a recording in memory at once
                voice = clf.adapt([budget.load(path)], audio.SAMPLE_RATE, voice=voice, stop=budget.stop)
            if recordings and voice.recordings == heard:
                raise AudioError(
                    "The recordings hold no usable speech; send recordings of the speaker talking, "
                    "close to the microphone."
                )
            return voice

        learned = given
        if recordings or references:
            learned = await _analyse(request, job, recordings=recordings, references=references)
        return {**learned.to_dict(), "description": learned.describe()}

    _stream_routes(app, clf, limits, schemas["Error"])

    @app.get("/v1/health", summary="Liveness")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/model", response_model=schemas["ModelOut"], summary="Labels, version and metrics of the loaded model")
    async def model() -> dict:
        config = clf.bundle.config
        info = {key: config[key] for key in ("features", "training", "versions", "preprocessing") if key in config}
        return {"labels": labels, "version": __version__, "model": info, "metrics": clf.metrics}

    return app


def _stream_routes(app: "FastAPI", clf: "EmotionClassifier", limits: Limits, error: Any) -> None:
    """``GET /v1/stream``: the WebSocket (:mod:`ser_core.serve.stream`) and, for a plain GET, its
    description in the OpenAPI document (answered 426)."""
    from fastapi import Query, WebSocket

    from .stream import DEFAULT_RATE, MAX_RATE, MIN_RATE, PROTOCOL, STREAM_PATH, Streams

    app.state.streams = Streams(clf, limits)

    @app.websocket(STREAM_PATH)
    async def stream(websocket: WebSocket) -> None:
        await app.state.streams.serve(websocket)

    @app.get(
        STREAM_PATH,
        status_code=426,
        summary="Live analysis over a WebSocket: a verdict per utterance as it ends",
        description=PROTOCOL,
        responses={
            101: {"description": "the WebSocket session described above"},
            422: {"model": error, "description": "bad parameters (the handshake is refused)"},
            426: {"model": error, "description": "a plain GET: connect with a WebSocket"},
            503: {"model": error, "description": "the server has no room for another stream, or is stopping"},
        },
    )
    async def stream_description(
        rate: Annotated[int, Query(ge=MIN_RATE, le=MAX_RATE, description="Hz of the PCM the client sends")] = (
            DEFAULT_RATE
        ),
        detector: Annotated[Literal[DETECTORS], Query(description="voice-activity detector")] = DEFAULT_DETECTOR,
    ) -> Any:
        return _json_error(
            426,
            f"Connect to {STREAM_PATH} with a WebSocket (ws://); see its description at /docs.",
            {"Upgrade": "websocket"},
        )


def serve(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    artifacts: str | os.PathLike[str] | None = None,
    limits: Limits = LIMITS,
) -> None:
    """Load the model, then serve the API with uvicorn until SIGINT or SIGTERM: running analyses
    are stopped at their next window and answered 503, and the server exits within seconds."""
    import uvicorn

    if not 0 < port < 65536:
        raise ParameterError(f"The port {port} is not usable; choose one between 1 and 65535.")
    swept = sweep_stale_uploads()
    if swept:
        log.info("removed %d upload folders left by a server that was stopped mid-request", swept)
    app = create_app(artifacts=artifacts, limits=limits)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.gate.stop_all()
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: Any = None) -> None:
            await app.state.streams.close_all()  # each open stream is sent what it holds, then closed (1012)
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        # beyond ours (an audio message, or a voice), refused without being buffered
        ws_max_size=WS_MAX_SIZE_FACTOR * max(limits.max_message_bytes, limits.max_voice_bytes),
    )
    Server(config).run()
