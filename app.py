"""Web demo: a Gradio page that continues a prompt with a trained model, streaming the text as it is produced.

    python app.py --model runs/tolstoy_tiny                     # http://127.0.0.1:7860
    python app.py --model user/tolstoy-ropegpt-tiny --port 8080  # a Hub repo (our remote code is trusted)
    python app.py --model ../shared/checkpoints/tiny-gpt2 --host 0.0.0.0

A prompt box, temperature (0 = greedy), top-k, top-p and a length limit, a Generate button and example prompts
in Russian and Tatar. The page runs offline: Gradio's analytics and version check are off, its fonts are
served locally, and the model loads from a folder (or the Hub cache with HF_HUB_OFFLINE=1).

Scripts and tests can call the endpoint by name:

    from gradio_client import Client
    Client("http://127.0.0.1:7860/").predict("Князь Андрей", 0.8, 50, 0.95, 100, api_name="/complete")
"""

from __future__ import annotations

import os

# Before gradio is imported: it reads this once, and otherwise phones home (analytics, version check).
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from threading import Event, Thread  # noqa: E402

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from transformers import HfArgumentParser, StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer  # noqa: E402

from generate import GenerateError, context_length, fit_prompt, load_model, sampling_kwargs  # noqa: E402
from training.sampling import pad_token_id  # noqa: E402

EXAMPLES = [
    "Князь Андрей",
    "Наташа вошла в гостиную и",
    "Все счастливые семьи похожи друг на друга,",
    "Казан шәһәре",
    "Туган тел — иң матур тел,",
]
MAX_NEW_TOKENS_LIMIT = 512


@dataclass
class AppArguments:
    """Command-line arguments of app.py."""

    model: str = field(metadata={"help": "A model folder (train_clm.py's output_dir) or a Hub repo id (user/name)."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to serve on (0.0.0.0: every interface)."})
    port: int = field(default=7860, metadata={"help": "Port to serve on."})
    share: bool = field(default=False, metadata={"help": "Also open a public *.gradio.live link (needs internet)."})
    device: str | None = field(default=None, metadata={"help": "cuda, mps or cpu; default: the best available."})


class TokenStreamer(TextIteratorStreamer):
    """A `TextIteratorStreamer` that hands over text after every token, not only at the end of a word.

    The parent waits for a space before releasing a word, because some tokenizers re-spell a word as its
    tokens arrive; a small model may write a long run without one, and the page would show nothing. Byte-level
    BPE (ours, GPT-2's) decodes the same prefix to the same text, so every token can be shown at once, except
    while the text ends in the first bytes of a multi-byte character (decoded as U+FFFD): those wait for the rest.
    """

    def put(self, value):
        if value.dim() > 1:
            if value.shape[0] > 1:
                raise ValueError("TokenStreamer only supports batch size 1")
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        self.token_cache.extend(value.tolist())
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        if text.endswith("\ufffd"):
            return
        printable, self.print_len = text[self.print_len :], len(text)
        if text.endswith("\n"):  # start a fresh cache, so decoding stays cheap on long outputs
            self.token_cache, self.print_len = [], 0
        self.on_finalized_text(printable)


class _StopOnEvent(StoppingCriteria):
    """Stops generation once `event` is set: the page closed or the user pressed Stop."""

    def __init__(self, event: Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def stream_completion(
    model,
    tokenizer,
    prompt: str,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 0.95,
    max_new_tokens: int = 100,
    on_note=None,
) -> Iterator[str]:
    """Yield the prompt followed by the continuation so far, each time a new piece of text is decoded.

    Temperature 0 means greedy decoding (then top-k and top-p play no part). `model.generate` runs in a
    thread and hands tokens to a `TokenStreamer` (transformers' `TextIteratorStreamer`, token by token),
    which this generator reads. The prompt is encoded without special tokens, as in `generate.py`.
    If the consumer stops early (the page is closed), generation stops at the next token. A prompt too long
    for the model's context is cut to its last tokens; `on_note(text)` is then called with what was cut.
    """
    if not prompt:
        raise GenerateError("type a prompt to continue")
    kwargs = sampling_kwargs(
        max_new_tokens=int(max_new_tokens),
        greedy=temperature <= 0,
        temperature=float(temperature),
        top_k=int(top_k),
        top_p=float(top_p),
    )
    kwargs.pop("num_return_sequences")
    # A prompt longer than the context keeps its last tokens (generate.fit_prompt); the page shows it whole.
    model_input, note = fit_prompt(tokenizer, prompt, context_length(model), kwargs["max_new_tokens"])
    if note and on_note is not None:
        on_note(note)
    # Someone who presses Generate expects a continuation: a small model sampling eos as its first token would
    # leave the box unchanged (about 2% of samples for a random-weight tiny model), so eos may come from the second.
    kwargs["min_new_tokens"] = 1
    device = next(model.parameters()).device
    inputs = tokenizer(model_input, return_tensors="pt", add_special_tokens=False).to(device)
    streamer = TokenStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    stop = Event()
    failures: list[BaseException] = []

    def run():
        try:
            model.generate(
                **inputs,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_StopOnEvent(stop)]),
                pad_token_id=pad_token_id(tokenizer),
                **kwargs,
            )
        except BaseException as e:  # noqa: BLE001  (re-raised below, in the caller's thread)
            failures.append(e)
            streamer.end()  # otherwise the loop below would wait for text forever

    thread = Thread(target=run, daemon=True)
    thread.start()
    text = prompt
    try:
        for piece in streamer:
            if piece:
                text += piece
                yield text
    finally:
        stop.set()  # also reached when the consumer closes this generator early
        thread.join()
    if failures:
        raise failures[0]
    if text == prompt:  # nothing decodable was generated (e.g. eos at once): still answer once
        yield text


def build_demo(model, tokenizer, title: str = "RoPE-GPT") -> gr.Blocks:
    """The page: prompt, sampling controls, Generate, the streamed text, examples; endpoint `/complete`."""

    def complete(prompt: str, temperature: float, top_k: int, top_p: float, max_new_tokens: int) -> Iterator[str]:
        try:
            yield from stream_completion(
                model, tokenizer, prompt, temperature, top_k, top_p, max_new_tokens, on_note=gr.Warning
            )
        except GenerateError as e:
            raise gr.Error(str(e)) from None

    with gr.Blocks(title=title) as demo:
        gr.Markdown(f"# {title}\nContinue a Russian or Tatar prompt with `{model.name_or_path}`.")
        with gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox(label="Prompt", lines=3, placeholder="Князь Андрей", elem_id="prompt")
                temperature = gr.Slider(0.0, 2.0, value=0.8, step=0.05, label="Temperature (0: greedy)")
                top_k = gr.Slider(0, 200, value=50, step=1, label="Top-k (0: no limit)")
                top_p = gr.Slider(0.05, 1.0, value=0.95, step=0.01, label="Top-p")
                max_new_tokens = gr.Slider(1, MAX_NEW_TOKENS_LIMIT, value=100, step=1, label="Maximum new tokens")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=1):
                output = gr.Textbox(label="Text", lines=14, interactive=False, elem_id="output")
        gr.Examples(examples=[[e] for e in EXAMPLES], inputs=[prompt], label="Examples (Russian, Tatar)")
        button.click(
            complete,
            inputs=[prompt, temperature, top_k, top_p, max_new_tokens],
            outputs=output,
            api_name="complete",
        )
    return demo


def main(argv: list[str] | None = None) -> int:
    """Load the model, build the page and serve it until interrupted; returns the exit code."""
    (args,) = HfArgumentParser(AppArguments).parse_args_into_dataclasses(args=argv)
    try:
        model, tokenizer = load_model(args.model, args.device)
    except GenerateError as e:
        print(f"app.py: error: {e}", file=sys.stderr)
        return 2
    demo = build_demo(model, tokenizer)
    demo.queue().launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
