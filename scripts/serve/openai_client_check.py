#!/usr/bin/env python3
"""The official `openai` Python client against `llmdrop serve`: models, completions with
echo log-probs, chat, and streaming of both (issue 15).

    openai_client_check.py BASE_URL        (e.g. http://127.0.0.1:8000/v1)
"""
import sys

import openai


def main(base):
    c = openai.OpenAI(base_url=base, api_key="unused")
    model = c.models.list().data[0].id
    print(f"model: {model}")
    r = c.completions.create(model=model, prompt="The capital of France is", max_tokens=8,
                             temperature=0, logprobs=2, echo=True)
    ch = r.choices[0]
    assert ch.logprobs.token_logprobs[0] is None
    print(f"completion: {ch.text!r} ({ch.finish_reason}; {r.usage.prompt_tokens} + {r.usage.completion_tokens} tokens)")
    streamed = "".join(e.choices[0].text for e in c.completions.create(
        model=model, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True) if e.choices)
    whole = c.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert streamed == whole.choices[0].text, (streamed, whole.choices[0].text)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    r = c.chat.completions.create(model=model, messages=msgs, max_tokens=24, temperature=0)
    text = r.choices[0].message.content
    print(f"chat: {text!r} ({r.choices[0].finish_reason})")
    parts = [e.choices[0].delta.content or "" for e in c.chat.completions.create(
        model=model, messages=msgs, max_tokens=24, temperature=0, stream=True) if e.choices]
    assert "".join(parts) == text, ("".join(parts), text)
    print(f"chat streamed in {len(parts)} chunks: the same text")
    try:
        c.completions.create(model=model, prompt="x", n=2)
        sys.exit("n=2 was accepted")
    except openai.BadRequestError as e:
        print(f"n=2: 400 {e.body['message'] if isinstance(e.body, dict) else e.body}")
    print("openai client: OK")


if __name__ == "__main__":
    main(sys.argv[1])
