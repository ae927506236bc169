"""A Streamlit session without a browser: the app's own websocket protocol, for timing the server alone.

A browser renders every page it is sent; eight of them on this project's two cores use most of the
CPU the server under test needs (``bench/load_sessions.py``). This client speaks what the browser's
frontend speaks (Streamlit's protobuf ``BackMsg``/``ForwardMsg`` over ``/_stcore/stream``, XSRF token
included, uploads through ``/_stcore/upload_file``) and renders nothing, so a load of many sessions
costs the load generator almost no CPU. It keeps what a rerun needs: the widget states it set itself
(every other widget keeps the value the server holds for it) and the elements of the last run.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import FileURLsRequest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect

XSRF_COOKIE = "_streamlit_xsrf"


@dataclass
class Run:
    """One script run as the client saw it: when it was asked for, its first and last message, and its elements."""

    asked: float
    first: float | None = None
    finished: float | None = None
    status: str = ""
    elements: list = field(default_factory=list)
    bytes: int = 0  # what the server sent for this run (what a browser would parse and render)

    @property
    def seconds(self) -> float:
        return (self.finished or float("nan")) - self.asked

    def of_type(self, kind: str) -> list:
        return [e for e in self.elements if e.WhichOneof("type") == kind]

    def charts(self) -> list[dict]:
        """The run's Plotly charts as a browser holds them: ``meta`` (the layout's, ``{}`` if none) and ``data``."""
        specs = [json.loads(e.plotly_chart.spec or "{}") for e in self.of_type("plotly_chart")]
        return [{"meta": s.get("layout", {}).get("meta") or {}, "data": s.get("data", [])} for s in specs]


class Session:
    """One user's session on ``url`` (``page``: the page's URL path, ``query``: its query string)."""

    def __init__(self, url: str, page: str = "", query: str = "") -> None:
        self.url, self.page, self.query = url.rstrip("/"), page, query
        self.http = requests.Session()
        self.session_id = ""
        self.widgets: dict[str, WidgetState] = {}
        self._ws = None
        self._pending: dict[str, asyncio.Future] = {}

    async def open(self) -> Run:
        """Connect (the XSRF cookie from the health endpoint first, as the frontend) and run the page once."""
        await asyncio.to_thread(self.http.get, f"{self.url}/_stcore/health", timeout=60)  # sets the XSRF cookie
        token = self.http.cookies.get(XSRF_COOKIE, "")
        ws_url = self.url.replace("http://", "ws://") + "/_stcore/stream"
        self._ws = await connect(ws_url, subprotocols=["streamlit", token] if token else ["streamlit"],
                                 additional_headers={"Origin": self.url, "Cookie": f"{XSRF_COOKIE}={token}"},
                                 max_size=None, open_timeout=60)
        return await self.rerun()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def rerun(self) -> Run:
        """Ask for a rerun with the widget states set so far; returns once the script finished."""
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string, cs.page_name = self.query, self.page
        cs.widget_states.widgets.extend(self.widgets.values())
        run = Run(asked=time.monotonic())
        await self._ws.send(msg.SerializeToString())
        while run.finished is None:
            self._handle(await self._ws.recv(), run)
        return run

    def _handle(self, data: bytes, run: Run | None) -> None:
        fm = ForwardMsg()
        fm.ParseFromString(data)
        kind = fm.WhichOneof("type")
        now = time.monotonic()
        if kind == "new_session":
            self.session_id = fm.new_session.initialize.session_id
        elif kind == "file_urls_response":
            self._pending.pop(fm.file_urls_response.response_id).set_result(fm.file_urls_response)
        if run is None:
            return
        run.bytes += len(data)
        if run.first is None and kind in ("delta", "new_session"):
            run.first = now
        if kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
            run.elements.append(fm.delta.new_element)
        elif kind == "script_finished":
            run.status = ForwardMsg.ScriptFinishedStatus.Name(fm.script_finished)
            if fm.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                run.finished = now

    async def upload(self, widget_id: str, files: list[Path]) -> Run:
        """Upload ``files`` into the file uploader ``widget_id`` as the frontend does, then rerun."""
        rid = uuid.uuid4().hex
        msg = BackMsg()
        msg.file_urls_request.CopyFrom(FileURLsRequest(request_id=rid, file_names=[p.name for p in files],
                                                       session_id=self.session_id))
        answer = self._pending[rid] = asyncio.get_running_loop().create_future()
        await self._ws.send(msg.SerializeToString())
        while not answer.done():
            self._handle(await self._ws.recv(), None)
        urls = answer.result().file_urls
        state = WidgetState(id=widget_id)
        for p, u in zip(files, urls):
            data = p.read_bytes()
            r = await asyncio.to_thread(self.http.put, self.url + u.upload_url, files={"file": (p.name, data)},
                                        headers={"X-Xsrftoken": self.http.cookies.get(XSRF_COOKIE, "")}, timeout=60)
            r.raise_for_status()
            info = state.file_uploader_state_value.uploaded_file_info.add(name=p.name, size=len(data), file_id=u.file_id)
            info.file_urls.CopyFrom(u)
        self.widgets[widget_id] = state
        return await self.rerun()


def uploader_id(run: Run, index: int = 0) -> str:
    """The widget id of the ``index``-th file uploader of a run."""
    return run.of_type("file_uploader")[index].file_uploader.id
