#!/usr/bin/env python3
"""Varied user prompts for a chat model to answer: questions, instructions and small tasks, made
here from our own templates and topic lists (not taken from any dataset).

    python3 tools/data_prompts.py --out DIR [--count 4000] [--heldout 200] [--seed 1]

Writes JSON lines of {"messages": [{"role": "user", "content": ...}]} (what arwkv-answer reads):
    DIR/prompts_train.jsonl     COUNT prompts for the teacher to answer (stage 3's conversations)
    DIR/prompts_heldout.jsonl   HELDOUT prompts for evaluation
    DIR/prompts_fixed20.jsonl   the first 20 held-out prompts: answered side by side in the results
Held-out prompts are about topics (and words and numbers) that no training prompt uses: a fixed
tenth of every list is kept for them, so evaluation measures answers to new subjects, not recall.
Every prompt is unique. The same seed gives the same files. Only the Python standard library.
"""
import argparse
import json
import os
import random
import sys

TOPICS = """photosynthesis|black holes|the water cycle|volcanoes|earthquakes|the immune system|vaccines|DNA|evolution|gravity|
electricity|magnetism|the speed of light|rainbows|tides|the seasons|the Moon|Mars|the Sun|comets|climate change|recycling|
coral reefs|rainforests|deserts|glaciers|bees|ants|whales|octopuses|dinosaurs|wolves|migration of birds|fungi|bacteria|
the human heart|sleep|memory|exercise|nutrition|vitamins|coffee|tea|bread baking|fermentation|chocolate|spices|rice|olive oil|
the printing press|the Roman Empire|ancient Egypt|the Silk Road|the Renaissance|the Industrial Revolution|the steam engine|
the telephone|radio|the internet|email|smartphones|batteries|solar panels|wind turbines|nuclear power|electric cars|bicycles|
trains|airplanes|bridges|skyscrapers|concrete|glass|paper|plastics|steel|compilers|operating systems|databases|encryption|
passwords|open source software|version control|unit testing|recursion|sorting algorithms|binary numbers|hash tables|
machine learning|neural networks|spreadsheets|budgeting|saving money|interest rates|inflation|taxes|supply and demand|
learning a language|reading habits|public speaking|time management|teamwork|job interviews|writing an essay|note taking|
chess|football|basketball|tennis|swimming|running a marathon|yoga|gardening|houseplants|composting|camping|hiking|maps|
compasses|clocks|calendars|music theory|the piano|the guitar|jazz|photography|painting|origami|poetry|libraries|museums|
volunteering|friendship|kindness|curiosity|honesty|patience|cities|villages|rivers|mountains|islands|oceans|weather forecasts|
clouds|snow|thunderstorms|first aid|fire safety|hand washing|bees and pollination|the alphabet|prime numbers|fractions|
percentages|geometry|triangles|the number zero|probability|statistics|maps and scale|the metric system""".replace("\n", "").split("|")

THINGS = "a robot|a cat|a lighthouse keeper|a young inventor|an old tree|a lost umbrella|a dragon|a baker|a tiny snail|a space explorer|" \
         "a librarian|a talking river|a shy ghost|a paper boat|a clockmaker|a fox|a mountain goat|a kite|a school teacher|a firefly".split("|")
ACTIONS = "learns to swim|finds a hidden door|makes a new friend|loses its way home|builds a bridge|plants a garden|solves a mystery|" \
          "wins a small prize|overcomes a fear|discovers music|travels to the sea|fixes a broken clock|teaches a lesson|waits for the rain".split("|")
WORDS = "happy|bright|quick|ancient|gentle|strange|calm|brave|tiny|enormous|curious|silent|fragile|clever|honest|bitter|warm|" \
        "rapid|simple|famous|empty|heavy|narrow|polite|rare|smooth|steady|sudden|vivid|wise".split("|")
NOUNS = "garden|planet|kitchen|window|journey|mirror|forest|letter|island|castle|pencil|engine|harbor|market|ladder|blanket|" \
        "violin|desert|museum|candle|anchor|puzzle|rocket|meadow|bottle|tunnel|lantern|compass|saddle|feather".split("|")
CODE_TASKS = """reverses a string|checks whether a number is prime|returns the largest item of a list|counts the vowels in a word|
computes the factorial of n|merges two sorted lists|removes duplicates from a list|checks whether a word is a palindrome|
converts Celsius to Fahrenheit|returns the n-th Fibonacci number|sums the digits of a number|finds the second smallest number in a list|
counts how often each word appears in a text|capitalizes every word of a sentence|returns the average of a list of numbers|
checks whether two words are anagrams|flattens a list of lists|returns the greatest common divisor of two numbers|
converts a binary string to an integer|splits a list into chunks of size k""".replace("\n", "").split("|")
LANGS = ["Python", "C", "JavaScript", "Go", "Rust"]
CATEGORIES = "fruits|vegetables|musical instruments|planets|European capitals|ocean animals|board games|programming languages|" \
             "kinds of clouds|birds|tools in a kitchen|colors|sports played with a ball|things to pack for a trip|ways to save energy".split("|")

QUESTION = ["What is {t}?", "Explain {t} in simple terms.", "How does {t} work?", "Why is {t} important?", "Give me three facts about {t}.",
            "What are the main ideas behind {t}?", "Can you explain {t} to a ten-year-old?", "What is a common misconception about {t}?",
            "What are the advantages and disadvantages of {t}?", "How would you describe {t} in two sentences?",
            "What should a beginner know about {t}?", "What is the history of {t}, briefly?"]
INSTRUCTION = ["Write a short poem about {t}.", "Write a haiku about {t}.", "Summarize what {t} is in one sentence.",
               "Write a short paragraph about {t} for a school newsletter.", "Give me a fun fact about {t}.",
               "Write three quiz questions about {t}, with answers.", "Describe {t} without using technical words.",
               "Write a tweet-length explanation of {t}.", "Make a short list of tips about {t}.",
               "Write a short dialogue between two friends talking about {t}."]


def small_task(rng, nums, words, nouns, things, actions, codes, cats):
    """One small task; its pieces come from the given lists (training or held-out parts)."""
    kind = rng.randrange(12)
    a, b = rng.choice(nums), rng.choice(nums)
    w, n = rng.choice(words), rng.choice(nouns)
    if kind == 0:
        return "What is %d + %d?" % (a, b)
    if kind == 1:
        return "What is %d times %d?" % (a % 30 + 2, b % 30 + 2)
    if kind == 2:
        return "Is %d a prime number? Explain briefly." % a
    if kind == 3:
        return "Convert %d degrees Celsius to Fahrenheit." % (a % 100)
    if kind == 4:
        xs = [rng.choice(nums) for _ in range(rng.randint(4, 7))]
        return "Sort these numbers from smallest to largest: %s." % ", ".join(map(str, xs))
    if kind == 5:
        return "Give me a synonym and an antonym for the word \"%s\"." % w
    if kind == 6:
        return "Spell the word \"%s\" backwards." % n
    if kind == 7:
        return "Write a short story about %s who %s." % (rng.choice(things), rng.choice(actions))
    if kind == 8:
        return "Write a %s function that %s." % (rng.choice(LANGS), rng.choice(codes))
    if kind == 9:
        return "List %d %s." % (rng.randint(3, 7), rng.choice(cats))
    if kind == 10:
        return "Use the words \"%s\" and \"%s\" in one sentence." % (w, n)
    return "Write a riddle whose answer is \"%s\"." % n


def split_list(xs, rng):
    """A fixed tenth (at least one) for held-out prompts; the rest for training."""
    xs = list(xs)
    rng.shuffle(xs)
    k = max(1, len(xs) // 10)
    return xs[k:], xs[:k]


def make(rng, count, parts, avoid=()):
    topics, nums, words, nouns, things, actions, codes, cats = parts
    out, seen, tries = [], set(avoid), 0
    while len(out) < count:
        tries += 1
        if tries > 100 * count + 1000:
            sys.exit("data_prompts.py: cannot make %d different prompts from these lists" % count)
        r = rng.random()
        if r < 0.4:
            p = rng.choice(QUESTION).format(t=rng.choice(topics))
        elif r < 0.7:
            p = rng.choice(INSTRUCTION).format(t=rng.choice(topics))
        else:
            p = small_task(rng, nums, words, nouns, things, actions, codes, cats)
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def write(path, prompts):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for p in prompts:
            f.write(json.dumps({"messages": [{"role": "user", "content": p}]}, ensure_ascii=False) + "\n")
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=4000)
    ap.add_argument("--heldout", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.count < 1 or a.heldout < 20:
        sys.exit("data_prompts.py: --count must be at least 1 and --heldout at least 20 (the fixed 20 come from it)")
    rng = random.Random(a.seed)
    lists = [TOPICS, list(range(2, 1000)), WORDS, NOUNS, THINGS, ACTIONS, CODE_TASKS, CATEGORIES]
    train_parts, heldout_parts = zip(*(split_list(xs, rng) for xs in lists))
    heldout = make(rng, a.heldout, heldout_parts)
    train = make(rng, a.count, train_parts, avoid=heldout)  # numbers folded into ranges may meet: never the same prompt
    os.makedirs(a.out, exist_ok=True)
    write(os.path.join(a.out, "prompts_train.jsonl"), train)
    write(os.path.join(a.out, "prompts_heldout.jsonl"), heldout)
    write(os.path.join(a.out, "prompts_fixed20.jsonl"), heldout[:20])
    print("data_prompts.py: %d training and %d held-out prompts (%d topics, %d held out) in %s" % (
        len(train), len(heldout), len(TOPICS), len(heldout_parts[0]), a.out))


if __name__ == "__main__":
    main()
