"""The MLflow pyfunc flavour of a qwenflow model: an `mlflow.pyfunc.ChatModel` over the save_pretrained directory.

Logged as "models from code" (this file is the model's code, the directory an artifact), so a registered version
loads with `mlflow.pyfunc.load_model("models:/NAME@champion")` and answers OpenAI-style chat requests, and
`mlflow models serve` works, with no pickled Python object in the registry.
"""

from __future__ import annotations

import time
import uuid

from mlflow.models import set_model
from mlflow.pyfunc import ChatModel
from mlflow.types.llm import ChatChoice, ChatCompletionResponse, ChatMessage, ChatParams, TokenUsageStats

HF_ARTIFACT = "hf"  # artifacts/<HF_ARTIFACT>/ in the logged model holds the save_pretrained directory
DEFAULT_MAX_TOKENS = 64  # when the request names no max_tokens (the ChatParams default is None)


class QwenflowChatModel(ChatModel):
    def load_context(self, context):
        # lazy: imports torch, transformers (seconds to import)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = context.artifacts[HF_ARTIFACT]
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.name = path.rstrip("/").rsplit("/", 1)[-1]

    # mlflow's ChatModel.predict narrows PythonModel.predict's signature this same way; mypy flags the narrowing
    def predict(  # type: ignore[override]
        self, context, messages: list[ChatMessage], params: ChatParams
    ) -> ChatCompletionResponse:
        # lazy: imports torch (seconds to import)
        import torch

        prompt = self.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content or ""} for m in messages],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        sample = bool(params.temperature) and params.temperature > 0
        kwargs = {
            "do_sample": sample,
            "max_new_tokens": params.max_tokens or DEFAULT_MAX_TOKENS,
            "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        }
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p or 1.0)
        with torch.inference_mode():
            out = self.model.generate(**prompt, **kwargs)
        n_prompt = prompt["input_ids"].shape[1]
        new = out[0, n_prompt:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        for stop in params.stop or []:
            text = text.split(stop, 1)[0]
        finish = "length" if len(new) >= kwargs["max_new_tokens"] else "stop"
        return ChatCompletionResponse(
            id=f"chatcmpl-{uuid.uuid4().hex[:12]}",
            model=self.name,
            created=int(time.time()),
            choices=[ChatChoice(index=0, message=ChatMessage(role="assistant", content=text), finish_reason=finish)],
            usage=TokenUsageStats(prompt_tokens=n_prompt, completion_tokens=len(new), total_tokens=n_prompt + len(new)),
        )


set_model(QwenflowChatModel())
