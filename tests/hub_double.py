"""A test double of the Hugging Face Hub's HTTP API: a real HTTP server on 127.0.0.1 that serves what
huggingface_hub 2.4 (create_repo, upload_folder, create_commit, create_branch, whoami, model_info,
list_repo_tree, hf_hub_download) and transformers 5.23 (push_to_hub, from_pretrained) call.

Use the fixture from another test file (pytest finds a fixture imported into a test module):

    from tests.hub_double import hub_double  # noqa: F401

    def test_push(hub_double, tmp_path):
        env = hub_double.env(tmp_path / "hf_home")  # HF_ENDPOINT, HF_TOKEN, an empty HF_HOME, online
        subprocess.run([sys.executable, "-c", "..."], env=env, check=True, timeout=60)
        assert ("POST", "/api/models/user/tiny/commit/main") in hub_double.requests

huggingface_hub reads HF_ENDPOINT when it is imported, so the clients run in a subprocess with `env`.
Knobs: `hub_double.fail_next_commits(n)` (the next n commit POSTs answer 500 and change nothing),
`hub_double.requests` ((method, path) in order), `hub_double.root` (blobs on disk), `hub_double.file(...)`.
Run its tests: .venv/bin/python -m pytest tests/test_hub_double.py -q

Deliberate simplifications: one user (`user`, who may write to the `user` namespace only), every file is a
regular git blob (preupload never answers "lfs", so no LFS/Xet transfer), no redirects, no pagination.
"""

import base64
import hashlib
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

_API_REPO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+)/([^/]+)(?:/(.*))?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$")
_GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob, which the Hub reports as the oid and ETag of a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class HubError(Exception):
    """An HTTP error answer; `code` goes into X-Error-Code, which huggingface_hub maps to its exceptions."""

    def __init__(self, status: int, message: str, code: str | None = None, **body):
        super().__init__(message)
        self.status, self.message, self.code, self.body = status, message, code, body


@dataclass
class _Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, str]  # path in repo -> blob oid


@dataclass
class _Repo:
    repo_type: str  # "model" | "dataset" | "space"
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)  # ref name -> commit oid
    commits: dict[str, _Commit] = field(default_factory=dict)
    last_modified: str = ""
    pull_requests: int = 0

    def commit_at(self, revision: str) -> _Commit:
        """The commit a branch name, refs/pr/N or commit oid names; 404 RevisionNotFound otherwise."""
        oid = self.branches.get(revision) or (revision if revision in self.commits else None)
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[oid]


class HubDouble:
    """The server and its state. Start it with `with HubDouble() as hub:` (or `.start()` / `.close()`)."""

    def __init__(self, root: Path | str | None = None, user: str = "user", token: str = "hf_double_write_token"):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="hub-double-"))
        self.user, self.token = user, token
        self.requests: list[tuple[str, str]] = []
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._failing_commits = 0
        self._counter = 0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self.endpoint = ""

    # ----------------------------------------------------------------- lifecycle and knobs

    def start(self) -> "HubDouble":
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll so that close() (shutdown) returns in ~50 ms instead of the default 0.5 s.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="hub-double", daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "HubDouble":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def fail_next_commits(self, n: int) -> None:
        """Make the next `n` POST .../commit/... answer 500 without changing anything."""
        with self._lock:
            self._failing_commits = n

    def env(self, hf_home: Path | str, token: bool = True) -> dict[str, str]:
        """os.environ for a client subprocess: this endpoint, an empty `hf_home`, online, no telemetry."""
        Path(hf_home).mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "HF_ENDPOINT": self.endpoint,
            "HF_HOME": str(hf_home),
            "HF_HUB_OFFLINE": "0",  # tests/conftest.py puts the test process offline
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"])),
        }
        env.pop("HF_HUB_CACHE", None)
        env.pop("HF_TOKEN_PATH", None)
        if token:
            env["HF_TOKEN"] = self.token
        else:
            env.pop("HF_TOKEN", None)
        return env

    def file(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        """The content of `path` at `revision`, read from the double's storage (KeyError when absent)."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            return self._blob_path(repo, repo.commit_at(revision).files[path]).read_bytes()

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[str]:
        """The paths in the repo at `revision`, sorted."""
        with self._lock:
            return sorted(self._repos[(repo_type, repo_id)].commit_at(revision).files)

    def is_private(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return self._repos[(repo_type, repo_id)].private

    # ----------------------------------------------------------------- storage

    def _blob_path(self, repo: _Repo, oid: str) -> Path:
        return self.root / f"{repo.repo_type}s" / repo.repo_id / "blobs" / oid

    def _store_blob(self, repo: _Repo, content: bytes) -> str:
        oid = git_blob_oid(content)
        path = self._blob_path(repo, oid)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(content)
            tmp.replace(path)
        return oid

    def _new_commit(self, repo: _Repo, parent: _Commit | None, files: dict[str, str], message: str) -> _Commit:
        self._counter += 1
        seed = f"{repo.repo_id}\0{parent.oid if parent else ''}\0{message}\0{self._counter}\0{sorted(files.items())}"
        commit = _Commit(hashlib.sha1(seed.encode()).hexdigest(), parent.oid if parent else None, message, files)
        repo.commits[commit.oid] = commit
        repo.last_modified = _now()
        return commit

    # ----------------------------------------------------------------- auth

    def _authenticated(self, headers) -> bool:
        """True with our token, False without one; 401 for a token that is not ours (as the Hub does)."""
        auth = headers.get("Authorization", "")
        if not auth:
            return False
        if auth != f"Bearer {self.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        return True

    def _repo(self, repo_type: str, repo_id: str, authenticated: bool, write: bool = False) -> _Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authenticated):
            # The Hub answers 401 to anonymous callers whether the repo is missing or private.
            raise HubError(404 if authenticated else 401, f"Repository {repo_id} not found", "RepoNotFound")
        if write and not authenticated:
            raise HubError(401, "You must be authenticated to write to a repository")
        if write and repo_id.split("/")[0] != self.user:
            raise HubError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    # ----------------------------------------------------------------- routes

    def handle(self, method: str, raw_path: str, query: dict, headers, body: bytes):
        """(status, headers, body bytes) for one request; raises HubError for error answers."""
        if method in ("GET", "HEAD") and raw_path == "/api/agent-harnesses":
            return _json({"standardEnvVars": [], "harnesses": {}})
        authenticated = self._authenticated(headers)
        if method == "GET" and raw_path == "/api/whoami-v2":
            if not authenticated:
                raise HubError(401, "Invalid username or password.")
            return _json(self._whoami())
        if method == "POST" and raw_path == "/api/repos/create":
            return self._create_repo(json.loads(body or b"{}"), authenticated)
        if method == "POST" and raw_path == "/api/validate-yaml":
            return _json({"errors": [], "warnings": []})
        match = _API_REPO.match(raw_path)
        if match:
            kind, namespace, name, rest = match.groups()
            return self._repo_api(method, kind[:-1], f"{unquote(namespace)}/{unquote(name)}", rest or "", query,
                                  headers, body, authenticated)  # fmt: skip
        match = _RESOLVE.match(raw_path)
        if match and method in ("GET", "HEAD"):
            kind, namespace, name, revision, path = match.groups()
            repo_type = kind[:-1] if kind else "model"
            return self._resolve(repo_type, f"{unquote(namespace)}/{unquote(name)}", unquote(revision),
                                 unquote(path), headers, authenticated)  # fmt: skip
        raise HubError(404, f"hub double: no route for {method} {raw_path}")

    def _whoami(self) -> dict:
        return {
            "type": "user",
            "id": "000000000000000000000001",
            "name": self.user,
            "fullname": "Hub Double User",
            "isPro": False,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "hub-double", "role": "write"}},
        }

    def _create_repo(self, payload: dict, authenticated: bool):
        if not authenticated:
            raise HubError(401, "You must be authenticated to create a repository")
        namespace = payload.get("organization") or self.user
        repo_type = payload.get("type") or "model"
        repo_id = f"{namespace}/{payload['name']}"
        if namespace != self.user:
            raise HubError(403, f"You don't have the rights to create a repository under {namespace}")
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.endpoint}/{prefix}{repo_id}"
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                # create_repo(exist_ok=True) swallows the 409 and then reads "url" from this body.
                raise HubError(409, f"You already created this {repo_type} repo", url=url)
            repo = _Repo(repo_type, repo_id, payload.get("visibility") == "private" or bool(payload.get("private")),
                         created_at=_now())  # fmt: skip
            # Like the Hub, a new repo has one commit holding .gitattributes.
            initial = self._new_commit(repo, None, {".gitattributes": self._store_blob(repo, _GITATTRIBUTES)},
                                       "initial commit")  # fmt: skip
            repo.branches["main"] = initial.oid
            self._repos[(repo_type, repo_id)] = repo
        return _json({"url": url, "name": repo_id, "id": repo_id})

    def _repo_api(self, method, repo_type, repo_id, rest, query, headers, body, authenticated):
        parts = [unquote(p) for p in rest.split("/")] if rest else []
        with self._lock:
            if method == "GET" and not parts:
                return _json(self._info(self._repo(repo_type, repo_id, authenticated), "main"))
            if method == "GET" and parts[0] == "revision" and len(parts) >= 2:
                return _json(self._info(self._repo(repo_type, repo_id, authenticated), "/".join(parts[1:])))
            if method == "GET" and parts[0] == "tree" and len(parts) >= 2:
                repo = self._repo(repo_type, repo_id, authenticated)
                recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
                return _json(self._tree(repo, parts[1], "/".join(parts[2:]), recursive))
            if method == "GET" and parts == ["refs"]:
                repo = self._repo(repo_type, repo_id, authenticated)
                branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": oid}
                            for n, oid in repo.branches.items() if not n.startswith("refs/")]  # fmt: skip
                return _json({"branches": branches, "converts": [], "tags": []})
            if method == "POST" and parts[0] == "paths-info" and len(parts) == 2:
                repo = self._repo(repo_type, repo_id, authenticated)
                return _json(self._paths_info(repo, parts[1], parse_qs(body.decode())))
            if method == "POST" and parts[0] == "preupload" and len(parts) == 2:
                repo = self._repo(repo_type, repo_id, authenticated, write=True)
                return _json(self._preupload(repo, parts[1], json.loads(body)))
            if method == "POST" and parts[0] == "commit" and len(parts) == 2:
                repo = self._repo(repo_type, repo_id, authenticated, write=True)
                return self._commit(repo, parts[1], query, body)
            if method == "POST" and parts[0] == "branch" and len(parts) == 2:
                repo = self._repo(repo_type, repo_id, authenticated, write=True)
                return self._create_branch(repo, parts[1], json.loads(body or b"{}"))
        raise HubError(404, f"hub double: no route for {method} /api/{repo_type}s/{repo_id}/{rest}")

    def _info(self, repo: _Repo, revision: str) -> dict:
        commit = repo.commit_at(revision)
        siblings = [
            {"rfilename": path, "size": self._blob_path(repo, oid).stat().st_size, "blobId": oid}
            for path, oid in sorted(commit.files.items())
        ]
        return {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": repo.created_at,
            "lastModified": repo.last_modified,
            "siblings": siblings,
        }

    def _entry(self, repo: _Repo, path: str, oid: str) -> dict:
        return {"type": "file", "oid": oid, "size": self._blob_path(repo, oid).stat().st_size, "path": path}

    def _tree(self, repo: _Repo, revision: str, folder: str, recursive: bool) -> list[dict]:
        files = repo.commit_at(revision).files
        prefix = f"{folder.rstrip('/')}/" if folder else ""
        inside = {p: oid for p, oid in files.items() if p.startswith(prefix)}
        if folder and not inside:
            raise HubError(404, f"{folder} does not exist on {revision}", "EntryNotFound")
        entries, folders = [], set()
        for path, oid in sorted(inside.items()):
            parts = path[len(prefix) :].split("/")
            # Every folder between `folder` and the file is listed when recursive, the first one otherwise.
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(self._entry(repo, path, oid))
        entries += [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                    for d in sorted(folders)]  # fmt: skip
        return entries

    def _paths_info(self, repo: _Repo, revision: str, form: dict) -> list[dict]:
        files = repo.commit_at(revision).files
        return [self._entry(repo, p, files[p]) for p in form.get("paths", []) if p in files]

    def _preupload(self, repo: _Repo, revision: str, payload: dict) -> dict:
        files = repo.commit_at(revision).files
        return {
            "files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": files.get(f["path"])}
                for f in payload.get("files", [])
            ]
        }

    def _commit(self, repo: _Repo, revision: str, query: dict, body: bytes):
        if self._failing_commits > 0:
            self._failing_commits -= 1
            raise HubError(500, "hub double: commit failure injected by fail_next_commits()")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((item["value"] for item in lines if item["key"] == "header"), {})
        if query.get("create_pr", ["0"])[0] == "1":
            base = repo.commit_at(revision)
            repo.pull_requests += 1
            revision = f"refs/pr/{repo.pull_requests}"
            repo.branches[revision] = base.oid
        if revision not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        parent = repo.commits[repo.branches[revision]]
        if header.get("parentCommit") not in (None, parent.oid):
            raise HubError(412, f"A commit has happened since {header['parentCommit']}: parent is {parent.oid}")
        files = dict(parent.files)
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "file":
                files[value["path"]] = self._store_blob(repo, base64.b64decode(value["content"]))
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {p: oid for p, oid in files.items() if not p.startswith(folder)}
            elif key != "header":
                raise HubError(400, f"hub double: commit operation {key!r} is not supported (LFS is never offered)")
        commit = self._new_commit(repo, parent, files, header.get("summary", ""))
        repo.branches[revision] = commit.oid
        web_url = f"{self.endpoint}/{'' if repo.repo_type == 'model' else repo.repo_type + 's/'}{repo.repo_id}"
        answer = {"success": True, "commitOid": commit.oid, "commitUrl": f"{web_url}/commit/{commit.oid}"}
        if revision.startswith("refs/pr/"):
            answer["pullRequestUrl"] = f"{web_url}/discussions/{revision.rsplit('/', 1)[1]}"
        return _json(answer)

    def _create_branch(self, repo: _Repo, branch: str, payload: dict):
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        repo.branches[branch] = repo.commit_at(payload.get("startingPoint") or "main").oid
        return _json({})

    def _resolve(self, repo_type, repo_id, revision, path, headers, authenticated):
        with self._lock:
            repo = self._repo(repo_type, repo_id, authenticated)
            commit = repo.commit_at(revision)
            oid = commit.files.get(path)
            if oid is None:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
            content = self._blob_path(repo, oid).read_bytes()
        status, extra = 200, {}
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(content) - 1
            extra["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            content, status = content[start : end + 1], 206
        return status, {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{oid}"',
            "Accept-Ranges": "bytes",
            **extra,
        }, content


def _json(payload) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()


class _Handler(BaseHTTPRequestHandler):
    hub: HubDouble  # set on the subclass made by HubDouble.start
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every answer carries Content-Length

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self) -> None:
        body = self._read_body()
        url = urlsplit(self.path)
        self.hub.requests.append((self.command, url.path))
        try:
            status, headers, content = self.hub.handle(self.command, url.path, parse_qs(url.query), self.headers, body)
        except HubError as error:
            status, content = error.status, json.dumps({"error": error.message, **error.body}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
        except Exception as error:  # a bug in the double must reach the client as a 500, not a hang
            status, content = 500, json.dumps({"error": f"hub double crashed: {error!r}"}).encode()
            headers = {"Content-Type": "application/json"}
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    def log_message(self, format, *args) -> None:  # the request log replaces stderr chatter
        pass


@pytest.fixture
def hub_double(tmp_path_factory):
    """A running HubDouble with storage in a fresh temp folder; see the module docstring."""
    with HubDouble(tmp_path_factory.mktemp("hub-double")) as hub:
        yield hub


__all__ = ["HubDouble", "HubError", "git_blob_oid", "hub_double"]
