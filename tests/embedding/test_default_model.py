"""The offline default embedding model (``use-multilingual-v3``) retrieves across Chinese and English.

Checked here:

* in a fresh, offline process (``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``) ``get_embedder()`` with no
  arguments loads ``use-multilingual-v3`` from the bundled package and returns 512-dimensional vectors;
* Chinese → English: each Chinese sentence, embedded as a query, ranks its own English translation first
  (by dot product of the L2-normalised vectors) among all the translations plus 200 English distractors;
* English → Chinese: each English translation, embedded as a query, ranks its own Chinese sentence first
  among all the Chinese sentences.

All sentences (pairs and distractors) were written for this test; none comes from a dataset. The pairs cover
varied everyday and technical topics; the distractors are built from hand-written subjects and hobby
activities (woodworking, sailing, astronomy, pottery, ...) kept away from the pairs' topics, so none of them
translates a Chinese sentence.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zhiku.config import Settings
from zhiku.embedding import create_embedder, resolve_model
from zhiku.embedding.base import Embedder
from zhiku.errors import InvalidInputError

MODEL = "use-multilingual-v3"

# (Chinese sentence, its English translation)
PAIRS: list[tuple[str, str]] = [
    (
        "明天下午可能会下大雨，出门记得带伞。",
        "It may rain heavily tomorrow afternoon, so remember to take an umbrella.",
    ),
    (
        "这道菜要先把土豆切成小块，再用中火炒十分钟。",
        "For this dish, first cut the potatoes into small pieces, then stir-fry them over medium heat for ten minutes.",
    ),
    ("去上海的高铁晚点了四十分钟。", "The high-speed train to Shanghai was forty minutes late."),
    (
        "这个Python函数在列表为空时会抛出索引错误。",
        "This Python function raises an index error when the list is empty.",
    ),
    ("数据库每天凌晨三点自动备份一次。", "The database is backed up automatically every day at three in the morning."),
    ("医生说我需要多喝水，并且休息一个星期。", "The doctor said I need to drink more water and rest for a week."),
    (
        "从图书馆借的书必须在下周五之前归还。",
        "The books borrowed from the library must be returned before next Friday.",
    ),
    ("昨晚的足球比赛最后以二比一结束。", "Last night's football match ended two to one."),
    (
        "我的信用卡被人盗刷了，得马上联系银行。",
        "Someone used my credit card fraudulently, so I have to call the bank right away.",
    ),
    ("我们下个月要搬到离公司更近的公寓。", "Next month we are moving to an apartment closer to the office."),
    ("我家的猫整天都在窗台上睡觉。", "My cat sleeps on the windowsill all day long."),
    ("春天是种番茄和辣椒的好时候。", "Spring is a good time to plant tomatoes and peppers."),
    ("手机电池用了两年，现在半天就没电了。", "After two years, my phone battery now runs out in half a day."),
    ("期末考试安排在六月的最后一周。", "The final exams are scheduled for the last week of June."),
    ("他们决定明年秋天在海边举行婚礼。", "They have decided to hold their wedding by the sea next autumn."),
    ("我每天早上都要喝一杯不加糖的黑咖啡。", "Every morning I drink a cup of black coffee without sugar."),
    ("因为大雾，机场所有航班都取消了。", "Because of thick fog, all flights at the airport were cancelled."),
    (
        "我们楼的电梯坏了，只能走楼梯上十二楼。",
        "The lift in our building is broken, so we have to walk up the stairs to the twelfth floor.",
    ),
    ("在屋顶安装太阳能板可以降低电费。", "Installing solar panels on the roof can lower your electricity bill."),
    (
        "如果忘记了密码，可以通过注册邮箱重新设置。",
        "If you forget your password, you can reset it through your registered email.",
    ),
    ("牙医建议我每半年洗一次牙。", "The dentist advised me to have my teeth cleaned every six months."),
    (
        "自行车后胎漏气了，得去修车铺补一下。",
        "My bicycle's rear tyre is flat, so I need to get it patched at the repair shop.",
    ),
    ("演唱会的门票十分钟之内就卖光了。", "The concert tickets sold out within ten minutes."),
    ("孩子的数学作业里有一道很难的几何题。", "My child's maths homework has a very hard geometry problem."),
    ("深色衣服和浅色衣服要分开洗。", "Dark clothes and light clothes should be washed separately."),
    (
        "房东通知我们下个季度房租要涨百分之五。",
        "The landlord told us the rent will go up by five percent next quarter.",
    ),
    ("打印机又卡纸了，谁能帮我看一下？", "The printer has jammed again; can someone take a look at it for me?"),
    (
        "用手机拍夜景的时候最好把手机放稳。",
        "When you take night photos with a phone, it is best to hold the phone steady.",
    ),
    (
        "这条山路很陡，爬到山顶大概要三个小时。",
        "This mountain path is steep, and it takes about three hours to reach the top.",
    ),
    ("游泳之前一定要先做热身运动。", "Always do warm-up exercises before you go swimming."),
    (
        "服务器内存占用太高，导致网页响应很慢。",
        "The server's memory usage is too high, which makes the web pages respond slowly.",
    ),
    ("提交代码之前请先运行全部单元测试。", "Please run all the unit tests before you commit your code."),
]

# Distractors: every subject with every activity (10 x 20 = 200 distinct sentences), all on hobbies that none
# of the pairs is about.
_SUBJECTS = [
    "My grandfather",
    "Our neighbour",
    "A retired teacher I know",
    "My older sister",
    "My uncle",
    "An old friend of mine",
    "The woman across the street",
    "My cousin",
    "Her younger brother",
    "A colleague of mine",
]
_ACTIVITIES = [
    "carved a small wooden spoon from a piece of cherry wood.",
    "sanded and varnished an old oak chest.",
    "sailed a little dinghy across the lake on Sunday.",
    "saw the rings of Saturn through a homemade telescope.",
    "shaped a clay vase on a potter's wheel.",
    "keeps three hives of bees behind the barn.",
    "won a chess tournament at the community hall.",
    "knitted a thick woollen scarf in bright green.",
    "counted more than forty kinds of birds at the marsh.",
    "restored an antique clock that had stopped decades ago.",
    "collects old postage stamps from South America.",
    "wrote a short history of the town's medieval castle.",
    "built a model ship inside a glass bottle.",
    "learned to juggle five beanbags at once.",
    "repaired the leaking hull of a wooden rowing boat.",
    "went to an exhibition of ancient bronze mirrors.",
    "memorised the name of every constellation in the northern sky.",
    "weaves colourful baskets out of willow branches.",
    "practises Chinese calligraphy with a brush for an hour every evening.",
    "folded a thousand paper cranes out of coloured paper.",
]
DISTRACTORS: list[str] = [f"{subject} {activity}" for subject, activity in itertools.product(_SUBJECTS, _ACTIVITIES)]

CHINESE = [zh for zh, _ in PAIRS]
ENGLISH = [en for _, en in PAIRS]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return create_embedder(resolve_model(MODEL), Settings(home=tmp_path_factory.mktemp("use-home")))


def top1_failures(queries: list[str], scores: np.ndarray, pool: list[str]) -> list[str]:
    """Describe every query whose own target (column i of row i) is not ranked first."""
    failures = []
    for index, row in enumerate(scores):
        best = int(np.argmax(row))
        if best != index:
            rank = int(np.sum(row > row[index])) + 1
            failures.append(
                f"{queries[index]!r}: own target ranked {rank} (score {row[index]:.3f}); "
                f"first was {pool[best]!r} (score {row[best]:.3f})"
            )
    return failures


def test_sentences_are_well_formed() -> None:
    assert len(PAIRS) >= 25
    assert len(set(CHINESE)) == len(CHINESE)
    assert len(set(ENGLISH)) == len(ENGLISH)
    assert len(DISTRACTORS) == 200
    assert len(set(DISTRACTORS)) == 200
    assert not set(DISTRACTORS) & set(ENGLISH)


def test_default_model_loads_offline_in_fresh_process(tmp_path: Path) -> None:
    code = (
        "from zhiku.embedding import get_embedder; e = get_embedder(); "
        'r = e.embed(["你好", "hello"]); print(e.spec.name, r.vectors.shape)'
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ZHIKU_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{MODEL} (2, 512)" in proc.stdout, proc.stdout + proc.stderr


def test_chinese_query_ranks_its_translation_first(embedder: Embedder) -> None:
    queries = embedder.embed(CHINESE, input_type="query").vectors
    pool = ENGLISH + DISTRACTORS
    documents = embedder.embed(pool, input_type="document").vectors
    assert queries.shape == (len(CHINESE), 512)
    assert documents.shape == (len(pool), 512)
    np.testing.assert_allclose(np.linalg.norm(documents, axis=1), 1.0, atol=1e-4)

    failures = top1_failures(CHINESE, queries @ documents.T, pool)
    assert not failures, f"{len(failures)}/{len(CHINESE)} Chinese queries missed:\n" + "\n".join(failures)


def test_english_query_ranks_its_chinese_sentence_first(embedder: Embedder) -> None:
    queries = embedder.embed(ENGLISH, input_type="query").vectors
    documents = embedder.embed(CHINESE, input_type="document").vectors

    failures = top1_failures(ENGLISH, queries @ documents.T, CHINESE)
    assert not failures, f"{len(failures)}/{len(ENGLISH)} English queries missed:\n" + "\n".join(failures)


def test_known_token_counts_give_the_same_result(embedder: Embedder) -> None:
    """Chunks carry their token counts: passing them skips a tokenization and changes nothing, and a count over
    the limit (or a wrong one of zero) still goes through the tokenizer."""
    texts = ["知识库的向量检索", "hello world, this is zhiku", "word " * 2000]
    counts = [len(e) for e in embedder.tokenizer.encode_batch(texts, add_special_tokens=False)]
    plain = embedder.embed(texts, truncate="end")
    known = embedder.embed(texts, token_counts=counts, truncate="end")
    np.testing.assert_allclose(known.vectors, plain.vectors, atol=1e-6)
    assert known.token_counts == plain.token_counts
    assert known.truncated == plain.truncated == [False, False, True]
    zero = embedder.embed(texts, token_counts=[0, counts[1], counts[2]], truncate="end")
    assert zero.token_counts == plain.token_counts
    with pytest.raises(InvalidInputError, match="token counts"):
        embedder.embed(texts, token_counts=counts[:2])
