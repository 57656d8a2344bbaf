"""Simulated people: hospital patients with Chinese names, MRNs, sex and birth dates."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta

from adapter.simulate.model import Patient

SURNAMES = (
    ("WANG", "王"),
    ("LI", "李"),
    ("ZHANG", "张"),
    ("LIU", "刘"),
    ("CHEN", "陈"),
    ("YANG", "杨"),
    ("ZHAO", "赵"),
    ("HUANG", "黄"),
    ("ZHOU", "周"),
    ("WU", "吴"),
    ("XU", "徐"),
    ("SUN", "孙"),
    ("MA", "马"),
    ("ZHU", "朱"),
    ("HU", "胡"),
    ("GUO", "郭"),
    ("HE", "何"),
    ("GAO", "高"),
    ("LIN", "林"),
    ("LUO", "罗"),
    ("YU", "于"),
    ("DONG", "董"),
    ("HAN", "韩"),
    ("CUI", "崔"),
)
GIVEN_F = (
    ("FANG", "芳"),
    ("NA", "娜"),
    ("MIN", "敏"),
    ("JING", "静"),
    ("LI", "丽"),
    ("YAN", "艳"),
    ("JUAN", "娟"),
    ("XIA", "霞"),
    ("XIUYING", "秀英"),
    ("GUIYING", "桂英"),
    ("YULAN", "玉兰"),
    ("SHUFEN", "淑芬"),
    ("HONGMEI", "红梅"),
    ("LIHUA", "丽华"),
)
GIVEN_M = (
    ("WEI", "伟"),
    ("QIANG", "强"),
    ("LEI", "磊"),
    ("JUN", "军"),
    ("YONG", "勇"),
    ("JIE", "杰"),
    ("TAO", "涛"),
    ("MING", "明"),
    ("CHAO", "超"),
    ("GANG", "刚"),
    ("JIANHUA", "建华"),
    ("ZHIQIANG", "志强"),
    ("GUOQING", "国庆"),
    ("HAIBO", "海波"),
)


def mrn_pool(rng: random.Random, count: int) -> Iterator[str]:
    """``count`` distinct 8-digit medical record numbers."""
    for number in rng.sample(range(10_000_000, 100_000_000), count):
        yield f"{number:08d}"


def birth_date(rng: random.Random, on: date, min_age: int, max_age: int) -> date:
    """A birth date that makes the person ``min_age``..``max_age`` years old on ``on``."""
    age = rng.randint(min_age, max_age)
    born = on.replace(year=on.year - age - 1, month=1, day=1)
    return born + timedelta(days=rng.randint(1, 364))


def patient(rng: random.Random, mrn: str, born: date, *, sex: str | None = None) -> Patient:
    """A patient with a random name of the given (or a random) sex."""
    chosen_sex = sex or rng.choice("FM")
    family, family_hanzi = rng.choice(SURNAMES)
    given, given_hanzi = rng.choice(GIVEN_F if chosen_sex == "F" else GIVEN_M)
    other_ids: tuple[str, ...] = ()
    if rng.random() < 0.2:
        other_ids = (f"OP{rng.randint(100_000, 999_999)}^^^NTCH^PI",)
    return Patient(
        mrn, family, given, family_hanzi, given_hanzi, chosen_sex, born, other_ids=other_ids
    )
