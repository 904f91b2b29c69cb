"""Sample from a causal LM (a trained folder or a Hub repo), or score text line by line.

    python generate.py --model runs/tolstoy_tiny --prompt "Князь Андрей"
    python generate.py --model user/tatar-ropegpt --prompt "Казан шәһәре" --num_return_sequences 3 --seed 0
    python generate.py --model ../shared/checkpoints/tiny-gpt2 --prompts_file prompts.txt --greedy --max_new_tokens 40
    python generate.py --model runs/tolstoy_tiny --score valid.txt      # per-line perplexity and bits per byte

Works the same for our `ropegpt`/`lstm_lm` folders (remote code, hence `trust_remote_code=True` for the model
and the tokenizer) and for GPT-2 family checkpoints such as ruGPT3-small. Sampling goes through
`pipeline("text-generation")`, the same call a user of the published model makes.

Streaming: with one sequence per prompt (the default) the text is printed token by token as it comes
(transformers' `TextStreamer`). `TextStreamer` handles a batch of one only, so with
`--num_return_sequences N > 1` each prompt's N sequences are generated together and printed when done.

Scoring: each non-empty line is scored on its own, as a document. Its first token is predicted from the
end-of-text token (`eos`), because that is what precedes every document in training: `training.blocks` puts
`<eos>` between documents and our tokenizers add no `<bos>`; GPT-2's `<|endoftext|>` is both. A tokenizer
with no eos falls back to its bos; with neither, the first token is not scored (and the "tokens" column
counts only scored tokens). Perplexity = exp(mean NLL over scored tokens); bits per byte = summed NLL in
nats / ln 2 / UTF-8 bytes of the line. Lines longer than the model's context are scored in consecutive
windows, each conditioned on the last token of the previous one.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    HfArgumentParser,
    TextStreamer,
    pipeline,
    set_seed,
)

from training.checkpoints import IncompleteModelError, check_model_folder
from training.sampling import pad_token_id, sampling_settings


class GenerateError(ValueError):
    """A bad argument or an unloadable model: the message is one line saying what to do."""


@dataclass
class GenerateArguments:
    """Command-line arguments of generate.py."""

    model: str = field(metadata={"help": "A model folder (train_clm.py's output_dir) or a Hub repo id (user/name)."})
    prompt: str | None = field(default=None, metadata={"help": "Text to continue."})
    prompts_file: str | None = field(
        default=None, metadata={"help": "A UTF-8 file with one prompt per line (blank lines skipped)."}
    )
    score: str | None = field(
        default=None,
        metadata={"help": "Instead of sampling, print perplexity and bits per byte of each line of this file "
                  "(or of this text, when it is a sentence; a missing file name is an error)."},
    )
    max_new_tokens: int = field(default=100, metadata={"help": "Tokens to generate after each prompt."})
    greedy: bool = field(
        default=False, metadata={"help": "Greedy decoding (deterministic); ignores the sampling knobs."}
    )
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature (lower: safer, duller)."})
    top_k: int = field(default=50, metadata={"help": "Sample among the k most likely tokens (0: no limit)."})
    top_p: float = field(
        default=0.95, metadata={"help": "Nucleus sampling: smallest set of tokens with this total probability."}
    )
    repetition_penalty: float = field(
        default=1.0, metadata={"help": "Above 1.0 discourages repeats (1.2 helps small models that loop); 1.0: off."}
    )
    num_return_sequences: int = field(default=1, metadata={"help": "Sequences per prompt (streamed only when 1)."})
    seed: int | None = field(default=None, metadata={"help": "Random seed: the same seed gives the same samples."})
    device: str | None = field(default=None, metadata={"help": "cuda, mps or cpu; default: the best available."})


def pick_device() -> torch.device:
    """The best device for sampling here: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _looks_local(name_or_path: str) -> bool:
    """True for names that can only be a folder: Hub ids are `name` or `owner/name`, never `./x` or `a/b/c`."""
    return (
        Path(name_or_path).exists()
        or name_or_path.startswith((".", "/", "~"))
        or name_or_path.count("/") > 1
        or "\\" in name_or_path
    )


def load_model(name_or_path: str, device: str | torch.device | None = None):
    """Load `(model, tokenizer)` from a folder or a Hub repo, in eval mode on `device` (default `pick_device()`).

    `trust_remote_code=True` on both: our models ship their code, and AutoTokenizer asks on stdin otherwise.
    A tokenizer without a pad token (GPT-2) gets its eos as pad, so batched and multi-sequence generation
    work; padding goes on the left, where a decoder-only model needs it.
    """
    if _looks_local(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_dir():
            raise GenerateError(f"model folder {name_or_path} does not exist")
        if not (path / "config.json").is_file() and not (path / ".final-ready").exists():
            raise GenerateError(
                f"{name_or_path} has no config.json: give a folder written by train_clm.py or save_pretrained"
            )
        try:
            check_model_folder(path)
        except IncompleteModelError as e:
            raise GenerateError(str(e)) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=True)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, trust_remote_code=True)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GenerateError(f"cannot load {name_or_path}: {first}") from e
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model.to(device if device is not None else pick_device())
    model.eval()
    return model, tokenizer


def sampling_kwargs(
    *,
    max_new_tokens: int = 100,
    greedy: bool = False,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 0.95,
    repetition_penalty: float = 1.0,
    num_return_sequences: int = 1,
) -> dict:
    """Keyword arguments for `generate` / the pipeline; the sampling knobs are left out when greedy.

    Greedy decoding has one answer only, so several sequences of it are refused here; the knobs themselves
    are `training.sampling.sampling_settings`, as for the samples written during training.
    """
    if max_new_tokens < 1:
        raise GenerateError(f"--max_new_tokens must be at least 1, got {max_new_tokens}")
    if num_return_sequences < 1:
        raise GenerateError(f"--num_return_sequences must be at least 1, got {num_return_sequences}")
    if greedy and num_return_sequences > 1:
        raise GenerateError("--greedy gives one sequence per prompt: drop --num_return_sequences or --greedy")
    if not greedy and temperature <= 0:
        raise GenerateError(f"--temperature must be positive (or use --greedy), got {temperature}")
    settings = sampling_settings(
        greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty
    )
    return {"max_new_tokens": max_new_tokens, "num_return_sequences": num_return_sequences, **settings}


@torch.no_grad()
def generate_texts(
    model, tokenizer, prompts: list[str], *, seed: int | None = None, stream: bool = False, **sampling
) -> list[str]:
    """Continue each prompt; returns prompt + continuation texts, prompt by prompt, `num_return_sequences` each.

    `sampling` takes the keywords of `sampling_kwargs` (max_new_tokens, greedy, temperature, top_k, top_p,
    repetition_penalty, num_return_sequences). `seed` makes sampling reproducible. `stream=True` prints each
    text to stdout as it is generated (only with one sequence per prompt: see the module docstring).
    The prompt is encoded as plain text (no special tokens), as the training samples are.
    """
    if not prompts or any(not p for p in prompts):
        raise GenerateError("every prompt must be non-empty text")
    kwargs = sampling_kwargs(**sampling)
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    if seed is not None:
        set_seed(seed)
    texts = []
    for prompt in prompts:
        prompt, note = fit_prompt(tokenizer, prompt, context_length(model), kwargs["max_new_tokens"])
        if note:
            print(f"generate.py: note: {note}", file=sys.stderr)
        streamer = None
        if stream and kwargs["num_return_sequences"] == 1:
            streamer = TextStreamer(tokenizer, skip_prompt=False, skip_special_tokens=True)
        outputs = generator(
            prompt,
            return_full_text=True,
            add_special_tokens=False,
            pad_token_id=pad_token_id(tokenizer),
            streamer=streamer,
            **kwargs,
        )
        texts.extend(out["generated_text"] for out in outputs)
    return texts


def fit_prompt(tokenizer, prompt: str, context: int | None, max_new_tokens: int) -> tuple[str, str | None]:
    """`prompt`, or its end that leaves room for `max_new_tokens` in the model's `context`; and a note saying
    what was cut (None when nothing was).

    A model fed more positions than it was built for fails or degrades silently, so a long prompt keeps its
    last tokens: the ones the continuation depends on most.
    """
    ids = tokenizer(prompt, add_special_tokens=False, verbose=False).input_ids
    # Asked for more new tokens than the context holds, the continuation runs past it anyway (the user's
    # choice); then only the prompt itself must fit.
    keep = context - max_new_tokens if context and max_new_tokens < context else context
    if context is None or len(ids) <= keep:
        return prompt, None
    # Decoded from a token boundary; a byte-level token may start mid-character, whose stray bytes are dropped.
    text = tokenizer.decode(ids[-keep:]).lstrip("\ufffd")
    while len(tokenizer(text, add_special_tokens=False, verbose=False).input_ids) > keep:
        text = text[1:]
    note = (
        f"the prompt has {len(ids)} tokens, more than the model's context of {context} leaves beside "
        f"{min(max_new_tokens, context)} new ones: keeping its last {keep} tokens"
    )
    return text, note


def _start_token_id(tokenizer) -> int | None:
    """The token a document follows in training: eos (our corpora and GPT-2), else bos, else none."""
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id


def context_length(model) -> int | None:
    """The longest input the model takes (`max_position_embeddings`; GPT-2 maps `n_positions` onto it)."""
    return getattr(model.config, "max_position_embeddings", None)


@torch.no_grad()
def score_lines(model, tokenizer, lines: list[str]) -> list[dict]:
    """Perplexity and bits per byte of each non-empty line, scored as a document of its own.

    Returns one dict per non-empty line: `line` (1-based number in `lines`), `text`, `tokens` (scored tokens),
    `bytes` (UTF-8), `nll` (summed, nats), `perplexity`, `bits_per_byte`. See the module docstring for how
    the first token is scored. A line with no scored token has perplexity NaN.
    """
    device = next(model.parameters()).device
    start = _start_token_id(tokenizer)
    window = context_length(model)
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        ids = tokenizer(line, add_special_tokens=False).input_ids
        if start is not None:
            ids = [start] + ids
        nll, scored = 0.0, 0
        step = (window - 1) if window else max(len(ids) - 1, 1)
        # Each window repeats the previous window's last token as context, so every token is predicted once.
        for begin in range(0, max(len(ids) - 1, 0), step):
            chunk = torch.tensor([ids[begin : begin + step + 1]], device=device)
            logits = model(input_ids=chunk, use_cache=False).logits.float()
            logprobs = torch.log_softmax(logits[0, :-1], dim=-1)
            nll -= logprobs.gather(-1, chunk[0, 1:, None]).sum().item()
            scored += chunk.shape[1] - 1
        n_bytes = len(line.encode("utf-8"))
        rows.append(
            {
                "line": number,
                "text": line,
                "tokens": scored,
                "bytes": n_bytes,
                "nll": nll,
                "perplexity": math.exp(nll / scored) if scored else float("nan"),
                "bits_per_byte": nll / math.log(2) / n_bytes,
            }
        )
    return rows


def format_score_table(rows: list[dict], width: int = 48) -> str:
    """A text table of `score_lines` rows, with a last row `all` over every scored token and byte.

    The `all` perplexity is exp(total NLL / total tokens), not a mean of the lines' perplexities.
    """
    header = f"{'line':>5} {'tokens':>7} {'bytes':>7} {'perplexity':>11} {'bits/byte':>10}  text"
    out = [header, "-" * len(header)]

    def fmt(label, tokens, n_bytes, ppl, bpb, text):
        return f"{label:>5} {tokens:>7d} {n_bytes:>7d} {ppl:>11.2f} {bpb:>10.4f}  {text}"

    for r in rows:
        text = r["text"] if len(r["text"]) <= width else r["text"][: width - 1] + "…"
        out.append(fmt(r["line"], r["tokens"], r["bytes"], r["perplexity"], r["bits_per_byte"], text))
    tokens = sum(r["tokens"] for r in rows)
    n_bytes = sum(r["bytes"] for r in rows)
    nll = sum(r["nll"] for r in rows)
    if rows:
        out.append("-" * len(header))
        ppl = math.exp(nll / tokens) if tokens else float("nan")
        out.append(fmt("all", tokens, n_bytes, ppl, nll / math.log(2) / max(n_bytes, 1), f"{len(rows)} lines"))
    return "\n".join(out)


def read_prompts(args: GenerateArguments) -> list[str]:
    """The prompts of `--prompt` and `--prompts_file` (one per non-blank line), in that order."""
    prompts = []
    if args.prompt is not None:
        if not args.prompt:
            raise GenerateError("--prompt is empty: give some text to continue")
        prompts.append(args.prompt)
    if args.prompts_file:
        path = Path(args.prompts_file)
        if not path.is_file():
            raise GenerateError(f"--prompts_file {path} does not exist")
        from_file = [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        if not from_file:
            raise GenerateError(f"--prompts_file {path} has no prompts (it is empty or blank)")
        prompts.extend(from_file)
    if not prompts:
        raise GenerateError("nothing to do: give --prompt TEXT, --prompts_file FILE or --score TEXT_OR_FILE")
    return prompts


def _looks_like_a_file_name(text: str) -> bool:
    """A single word with a path separator or a text-file suffix: what a user means as a file, not a sentence."""
    if any(ch.isspace() for ch in text.strip()):
        return False
    return "/" in text or "\\" in text or Path(text).suffix.lower() in (".txt", ".text", ".md", ".csv", ".tsv")


def read_score_lines(text_or_file: str) -> list[str]:
    """The lines to score: those of the file `text_or_file` if it exists, else the text itself.

    A missing file (a word such as `valid.txt` or `data/x`) is an error, never scored as a sentence.
    """
    path = Path(text_or_file)
    if not path.is_file() and _looks_like_a_file_name(text_or_file):
        raise GenerateError(
            f"--score {text_or_file}: no such file (to score it as text, give a sentence with spaces)"
        )
    text = path.read_text(encoding="utf-8-sig") if path.is_file() else text_or_file
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise GenerateError(f"--score {text_or_file!r}: nothing to score (empty text or file)")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, then sample (streaming) or print the score table; returns the exit code."""
    (args,) = HfArgumentParser(GenerateArguments).parse_args_into_dataclasses(args=argv)
    try:
        if args.score is not None:
            lines = read_score_lines(args.score)
            model, tokenizer = load_model(args.model, args.device)
            print(format_score_table(score_lines(model, tokenizer, lines)))
            return 0
        prompts = read_prompts(args)
        sampling = dict(
            max_new_tokens=args.max_new_tokens,
            greedy=args.greedy,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            repetition_penalty=args.repetition_penalty,
            num_return_sequences=args.num_return_sequences,
        )
        sampling_kwargs(**sampling)  # reject bad knobs before spending time on loading
        model, tokenizer = load_model(args.model, args.device)
        if args.num_return_sequences == 1:
            generate_texts(model, tokenizer, prompts, seed=args.seed, stream=True, **sampling)
        else:
            texts = generate_texts(model, tokenizer, prompts, seed=args.seed, **sampling)
            for i, text in enumerate(texts):
                print(f"=== prompt {i // args.num_return_sequences + 1}, sample {i % args.num_return_sequences + 1}")
                print(text)
    except GenerateError as e:
        print(f"generate.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
