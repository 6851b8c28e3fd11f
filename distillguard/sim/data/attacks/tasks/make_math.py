"""Writes math_synth.jsonl: word problems from fixed templates with random numbers (seeded, reproducible).

These stand in for the private task sets a distillation campaign sweeps through: many items of one
shape, each sent once or a few times. Run: python make_math.py
"""

import json
import random
from pathlib import Path

NAMES = ["Amara", "Bo", "Chen", "Dara", "Eli", "Fatima", "Gustavo", "Hana", "Ivan", "Jia", "Kofi", "Lena", "Mateo",
         "Noor", "Oskar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yusuf", "Zoe"]
ITEMS = ["apples", "notebooks", "tickets", "bags of rice", "pencils", "cupcakes", "bus passes", "plants", "shirts"]
T = [
    "{a} buys {n} {item} at ${p} each and pays with a ${b} bill. How much change does {a} get?",
    "A shop sells {item} for ${p} each, with a {d}% discount on orders of more than {m}. What do {n} {item} cost?",
    "{a} reads {n} pages on Monday and {d}% more each following day. How many pages has {a} read after {k} days?",
    "A tank holds {V} liters. It leaks {r} liters per hour while being filled at {f} liters per hour. How long until it is full?",
    "{a} and {c} share ${b} in the ratio {x}:{y}. How much more does the larger share get?",
    "A train travels {s} km at {v} km/h and then {s2} km at {v2} km/h. What is its average speed for the whole trip?",
    "{a} saves ${p} in the first week and ${m} more each week than the week before. How much after {k} weeks?",
    "The price of {item} rose by {d}% and then fell by {e}%. If it now costs ${p}, what was the original price?",
    "A rectangle has a perimeter of {P} cm and its length is {x} cm longer than its width. What is its area?",
    "{a} works {h} hours a week at ${w} per hour, with time-and-a-half for hours over 40. What is the weekly pay?",
    "In a class of {n} students, {d}% passed math and {e}% passed science; {k} passed both. How many passed neither?",
    "A recipe for {m} people uses {g} grams of flour. How much flour is needed for {n} people?",
    "{a} invests ${b} at {d}% annual interest compounded yearly. What is the balance after {k} years, to the nearest dollar?",
    "A car uses {r} liters of fuel per 100 km. Fuel costs ${p} per liter. How much does a {s} km trip cost?",
    "The sum of three consecutive {parity} numbers is {S}. What are the numbers?",
    "A box contains {x} red and {y} blue marbles. Two are drawn without replacement. What is the probability both are red?",
    "{a} can paint a fence in {h} hours and {c} can paint it in {k} hours. How long do they take together?",
    "A store marks up {item} by {d}% over cost and sells them for ${p}. What was the cost price?",
    "A {V}-liter mixture is {d}% juice. How much pure juice must be added to make it {e}% juice?",
    "{a} is {x} years older than {c}. In {k} years, {a} will be twice as old as {c} was {y} years ago. How old is {c} now?",
]


def main() -> None:
    rng = random.Random(20260112)
    rows = []
    for i in range(1500):
        t = T[i % len(T)]
        v = dict(a=rng.choice(NAMES), c=rng.choice(NAMES), item=rng.choice(ITEMS), n=rng.randint(3, 60),
                 p=rng.randint(2, 90), b=rng.choice([50, 100, 200, 500, 1000]), d=rng.choice([5, 10, 12, 15, 20, 25, 30]),
                 e=rng.choice([5, 10, 20, 40, 60]), m=rng.randint(2, 12), k=rng.randint(2, 9), V=rng.randint(50, 900),
                 r=rng.randint(2, 9), f=rng.randint(10, 40), x=rng.randint(2, 9), y=rng.randint(2, 9),
                 s=rng.randint(40, 400), v=rng.randint(40, 120), s2=rng.randint(40, 400), v2=rng.randint(40, 120),
                 P=rng.randint(10, 60) * 2, h=rng.randint(2, 12) if "paint" in t else rng.randint(30, 60),
                 w=rng.randint(12, 45), g=rng.randint(200, 900), S=rng.randint(10, 300) * 3,
                 parity=rng.choice(["odd", "even", "whole"]))
        rows.append({"id": f"math_synth/{i}", "source": "distillguard simulator", "text": t.format(**v),
                     "category": f"template_{i % len(T)}"})
    with (Path(__file__).parent / "math_synth.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
