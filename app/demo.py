"""The demo project that the run command creates on a fresh data directory.

The prompts and responses below were written for sftdesk; they are not taken from any dataset.
"""

import io
import secrets

import orjson
from sqlalchemy import select

from app.auth.models import User
from app.auth.service import create_user
from app.db import unit_of_work
from app.items.importing import ImportOptions
from app.items.service import import_file
from app.projects.models import Project
from app.projects.service import create_project

DEMO_SLUG = "demo"
DEMO_ADMIN = "admin"

DEMO_GUIDELINES = """\
## What a good response does

1. Answers the question that was asked, in the language it was asked in.
2. Is correct; when unsure, says so instead of guessing.
3. Is as short as it can be while still complete. Use lists for steps.
4. Refuses harmful requests briefly and offers a safe alternative.

中文提示请用简体中文回答，语气友好、简洁。
"""

DEMO_ROWS = [
    {"instruction": "Explain what a hash table is to a new programmer.", "input": "",
     "output": "A hash table stores values under keys. It runs each key through a hash function to pick a slot in an array, so looking a key up takes about the same time however many entries there are. When two keys land in the same slot (a collision), the table keeps both, for example in a short list."},
    {"instruction": "Rewrite this sentence in the passive voice.", "input": "The committee approved the budget on Monday.",
     "output": "The budget was approved by the committee on Monday."},
    {"instruction": "List three ways to reduce the memory use of a Python program.", "input": "",
     "output": "1. Process data as a stream instead of loading it all at once.\n2. Use __slots__ or dataclasses with slots for many small objects.\n3. Store numbers in arrays (array module or NumPy) instead of lists of ints."},
    {"instruction": "Write a haiku about the first snow.", "input": "", "output": ""},
    {"instruction": "Summarise the paragraph in one sentence.",
     "input": "Our team moved the nightly import from a single large transaction to batches of two thousand rows. Imports now finish in a third of the time, and annotators no longer see the site freeze at midnight.",
     "output": "Splitting the nightly import into small batches made it three times faster and stopped it from freezing the site."},
    {"instruction": "What is the difference between a process and a thread?", "input": "", "output": ""},
    {"instruction": "用一句话解释什么是机器学习。", "input": "",
     "output": "机器学习是让计算机从数据中总结规律，并用这些规律对新数据做出预测或决策的方法。"},
    {"instruction": "把下面的句子翻译成英文。", "input": "今天的会议推迟到下午三点。",
     "output": "Today's meeting has been postponed to 3 p.m."},
    {"instruction": "给一家新开的咖啡店想三个名字。", "input": "", "output": ""},
    {"instruction": "解释一下为什么天空是蓝色的。", "input": "",
     "output": "阳光进入大气层时，波长较短的蓝光比红光更容易被空气分子散射，所以我们从各个方向看到的天空都是蓝色的。"},
    {"instruction": "写一段简短的周末出行计划，目的地是杭州。", "input": "", "output": ""},
    {"instruction": "请检查这段 Python 代码的错误。", "input": "def add(a, b):\n    return a - b",
     "output": "函数名是 add，但返回的是 a - b。应改为 return a + b。"},
]

DEMO_CHATS = [
    {"messages": [
        {"role": "system", "content": "You are a concise assistant for a small bakery."},
        {"role": "user", "content": "Do you have gluten-free bread?"},
        {"role": "assistant", "content": "Yes, we bake a gluten-free loaf on Tuesdays and Fridays."},
        {"role": "user", "content": "Can I reserve one for Friday?"},
    ]},
    {"messages": [
        {"role": "user", "content": "我想学习做饭，应该从哪里开始？"},
        {"role": "assistant", "content": "可以先从简单的家常菜开始，比如番茄炒蛋和清炒青菜。"},
        {"role": "user", "content": "番茄炒蛋的步骤是什么？"},
        {"role": "assistant", "content": "1. 鸡蛋打散炒至凝固后盛出。\n2. 番茄切块炒出汁。\n3. 倒回鸡蛋，加盐和少许糖翻炒均匀即可。"},
    ]},
]

DEMO_PREFERENCES = [
    {"prompt": "How should I store fresh basil?",
     "chosen": "Trim the stems and keep the basil in a glass of water on the counter, loosely covered, out of direct sun. The fridge turns the leaves black.",
     "rejected": "Put it in the fridge."},
    {"prompt": "用简单的话解释什么是通货膨胀。",
     "chosen": "通货膨胀是指物价普遍持续上涨，同样的钱能买到的东西变少了。",
     "rejected": "就是东西变贵。"},
]


def _jsonl(rows: list[dict]) -> io.BytesIO:
    return io.BytesIO(b"".join(orjson.dumps(row) + b"\n" for row in rows))


def ensure_demo(*, batch_rows: int = 500) -> str | None:
    """Create the admin account and the demo project when absent.

    Returns the new admin password, or None when the admin account already existed.
    """
    password = None
    with unit_of_work() as db:
        admin = db.scalar(select(User).where(User.username == DEMO_ADMIN))
        if admin is None:
            password = secrets.token_urlsafe(12)
            admin = create_user(db, username=DEMO_ADMIN, password=password, role="admin", display_name="Admin")
        project = db.scalar(select(Project).where(Project.slug == DEMO_SLUG))
        created_project = project is None
        if created_project:
            project = create_project(
                db, admin, slug=DEMO_SLUG, name="Demo: bilingual assistant", guidelines=DEMO_GUIDELINES,
                # One person can try the whole loop alone, so the admin may review their own work.
                annotations_per_item=1, review_required=True, self_review=True,
            )
        admin_id = admin.id
    if created_project:
        for rows, shape in ((DEMO_ROWS, "alpaca"), (DEMO_CHATS, "messages"), (DEMO_PREFERENCES, "preference")):
            import_file(
                project, _jsonl(rows), ImportOptions(shape=shape, file_format="jsonl", filename=f"demo-{shape}.jsonl"),
                user_id=admin_id, batch_rows=batch_rows,
            )
    return password
