import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.training.errors import GenerationError
from app.training.generate import chat_completions_url, generate_openai_compatible, generate_responses, generate_suggestions

pytestmark = [pytest.mark.training, pytest.mark.xdist_group("training")]


class _FakeChatHandler(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible chat completions endpoint whose model name selects its behaviour."""

    def do_POST(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        model = body["model"]
        if model == "broken":
            self._reply(500, {"error": {"message": "model crashed"}})
        elif model == "slow":
            time.sleep(1.0)
            self._reply(200, {"choices": [{"message": {"role": "assistant", "content": "late"}}]})
        elif model == "empty":
            self._reply(200, {"choices": []})
        else:
            question = body["messages"][-1]["content"]
            self._reply(200, {"choices": [{"message": {"role": "assistant", "content": f"答：{question}"}}]})

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature fixed by the base class
        pass


@pytest.fixture
def fake_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeChatHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _base_url(server) -> str:
    host, port = server.server_address
    return f"http://{host}:{port}/v1"


def test_local_generation_returns_strings(finetuned_run, tiny_model_dir, conversations) -> None:
    prompts = [messages[:-1] for messages in conversations]

    responses = generate_responses(tiny_model_dir, finetuned_run["adapter_path"], prompts, max_new_tokens=6)

    assert len(responses) == len(prompts)
    assert all(isinstance(response, str) for response in responses)


@pytest.fixture(scope="module")
def noisy_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with large random weights, so that greedy responses differ from prompt to prompt.

    The tiny model as built responds to every prompt with newlines only, which would make order checks pass
    trivially.
    """
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    directory = tmp_path_factory.mktemp("noisy-model")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(directory)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny_model_dir / name, directory / name)
    return directory


def test_batched_generation_keeps_order(noisy_model_dir, conversations) -> None:
    prompts = [messages[:-1] for messages in conversations]

    together = generate_responses(noisy_model_dir, None, prompts, max_new_tokens=6, batch_size=len(prompts))
    one_by_one = [generate_responses(noisy_model_dir, None, [prompt], max_new_tokens=6)[0] for prompt in prompts]

    assert len(set(one_by_one)) > 1, "responses must differ for the order check to mean anything"
    assert together == one_by_one


def test_generation_needs_no_generation_markers(tiny_model_dir, tmp_path) -> None:
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    template_path = model_dir / "chat_template.jinja"
    template = template_path.read_text(encoding="utf-8")
    template_path.write_text(
        template.replace("{% generation %}", "").replace("{% endgeneration %}", ""), encoding="utf-8"
    )

    responses = generate_responses(model_dir, None, [[{"role": "user", "content": "hi"}]], max_new_tokens=2)

    assert "{% generation %}" not in template_path.read_text(encoding="utf-8")
    assert len(responses) == 1


def test_local_generation_rejects_unknown_role(tiny_model_dir) -> None:
    with pytest.raises(GenerationError, match="unknown role 'narrator'"):
        generate_responses(tiny_model_dir, None, [[{"role": "narrator", "content": "x"}]], max_new_tokens=2)


def test_chat_completions_url_accepts_both_forms() -> None:
    assert chat_completions_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1/chat/completions"
    assert chat_completions_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1/chat/completions"


def test_openai_compatible_returns_replies(fake_server) -> None:
    conversations = [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}],
        [{"role": "user", "content": "Weather?"}, {"role": "function_call", "content": "{}"},
         {"role": "observation", "content": "sunny"}],
    ]

    replies = generate_openai_compatible(
        _base_url(fake_server), "demo", conversations, api_key="test-key", timeout_s=5, max_new_tokens=32
    )

    assert replies == ["答：你好", "答：sunny"]
    first = fake_server.requests[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["Authorization"] == "Bearer test-key"
    assert first["body"]["max_tokens"] == 32
    assert first["body"]["temperature"] == 0.0
    roles = [message["role"] for message in fake_server.requests[1]["body"]["messages"]]
    assert roles == ["user", "assistant", "user"]


def test_openai_compatible_error_status_raises(fake_server) -> None:
    with pytest.raises(GenerationError, match="HTTP 500.*model crashed"):
        generate_openai_compatible(_base_url(fake_server), "broken", [[{"role": "user", "content": "x"}]], timeout_s=5)


def test_openai_compatible_reply_without_choices_raises(fake_server) -> None:
    with pytest.raises(GenerationError, match="without choices"):
        generate_openai_compatible(_base_url(fake_server), "empty", [[{"role": "user", "content": "x"}]], timeout_s=5)


def test_openai_compatible_timeout_raises(fake_server) -> None:
    with pytest.raises(GenerationError, match="timed out after 0.2 s"):
        generate_openai_compatible(_base_url(fake_server), "slow", [[{"role": "user", "content": "x"}]], timeout_s=0.2)


def test_suggestions_dispatch_to_server(fake_server) -> None:
    config = {"backend": "openai_compatible", "model": "demo", "base_url": _base_url(fake_server), "timeout_s": 5}

    replies = generate_suggestions(config, [[{"role": "user", "content": "hi"}]], api_key=None)

    assert replies == ["答：hi"]
    assert "Authorization" not in fake_server.requests[0]["headers"]


def test_suggestions_dispatch_to_local_model(tiny_model_dir) -> None:
    replies = generate_suggestions({"model": str(tiny_model_dir), "max_new_tokens": 4}, [[{"role": "user", "content": "hi"}]])

    assert len(replies) == 1
    assert isinstance(replies[0], str)
