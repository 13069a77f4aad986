"""Templated tasks with verifiable answers: arithmetic, sorting, and questions about generated facts.

Synthetic data is only as good as its labels. For these tasks a program knows the
answer, so a model's output can be *checked*, not judged: the basis of
rejection-sampling finetuning and of RL with verifiable rewards. Each record:

    {"prompt": question + "\\n", "response": answer + "\\n", "answer": answer, "task": ...,
     "provenance": {"generator": "verifiable", "task": ..., "seed": ..., "index": ..., "difficulty": ...}}

the prompt/response layout of tinyllm/data/instructions.py, so a JSONL file of them feeds
`tinyllm finetune --data FILE`. The three tasks, by difficulty d = 1, 2, 3:

    arithmetic   d+1 integers of up to d digits joined by +, - and *, in one of a few phrasings:
                 "What is 7 + 3 * 2?" -> "13"   (usual precedence)
    sorting      3 + 2d numbers (ascending or descending) or words (alphabetically):
                 "Sort in ascending order: 42, 7, 19" -> "7, 19, 42"
    qa           facts about 2 + d people (city, pet, job), then a question; from d = 2 on,
                 two-hop questions ("What pet does the person who lives in Oslo have?")

``solve(task, prompt)`` recomputes the answer from the prompt text alone: a parser
and a solver per task, written independently of the generator (arithmetic goes
through ``ast`` with only integers and + - *, never ``eval``). ``check(record, output)``
compares the first line of a model's output with it, so the generator's stored
answers are checked as well (the tests do) and a wrong template cannot hide.
``verify(prompt, response)`` does the same for a pair nobody labelled (a model's
own, tinyllm/data/synthetic/self_instruct.py): True or False when the prompt
follows one of the templates exactly (``task_of``), None when it follows none.

Everything comes from ``random.Random(seed)``: the same seed gives the same records.

    >>> records = generate("arithmetic", 2, seed=0)
    >>> check(records[0], records[0]["answer"] + "\\nextra text")
    True
"""

from __future__ import annotations

import ast
import random
import re

TASKS = ("arithmetic", "sorting", "qa")
DIFFICULTIES = (1, 2, 3)

ARITHMETIC_PHRASINGS = ("What is {}?", "Compute {}.", "Calculate: {}", "{} =")
WORDS = ("apple", "river", "candle", "garden", "pencil", "mirror", "basket", "window", "forest", "ladder",
         "button", "violin", "rocket", "saddle", "tunnel", "walnut", "meadow", "harbor", "lantern", "pepper")
PEOPLE = ("Mira", "Tomas", "Ines", "Kofi", "Lena", "Ravi", "Yuki", "Omar", "Sofia", "Pavel", "Ada", "Bruno")
CITIES = ("Oslo", "Lima", "Cairo", "Hanoi", "Quito", "Perth", "Dakar", "Riga", "Porto", "Kyoto", "Tunis")
PETS = ("cat", "dog", "parrot", "rabbit", "turtle", "hamster", "goldfish", "lizard")
JOBS = ("baker", "nurse", "pilot", "farmer", "teacher", "painter", "plumber", "chemist")


def _check_task(task: str, difficulty: int) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")


# ----------------------------------------------------------------------------- generators


def _arithmetic(rng: random.Random, d: int) -> str:
    terms = [str(rng.randint(0, 10**d - 1)) for _ in range(d + 1)]
    expr = terms[0] + "".join(f" {rng.choice('+-*')} {t}" for t in terms[1:])
    return rng.choice(ARITHMETIC_PHRASINGS).format(expr)


def _sorting(rng: random.Random, d: int) -> str:
    n = 3 + 2 * d
    if rng.random() < 0.3:
        return "Sort alphabetically: " + ", ".join(rng.sample(WORDS, n))
    order = rng.choice(("ascending", "descending"))
    return f"Sort in {order} order: " + ", ".join(str(rng.randint(0, 10**(d + 1) - 1)) for _ in range(n))


def _qa(rng: random.Random, d: int) -> str:
    k = 2 + d
    people, cities = rng.sample(PEOPLE, k), rng.sample(CITIES, k)
    pets, jobs = [rng.choice(PETS) for _ in people], [rng.choice(JOBS) for _ in people]
    facts = []
    for p, c, pet, job in zip(people, cities, pets, jobs):
        facts += [f"{p} lives in {c}.", f"{p} has a {pet}.", f"{p} works as a {job}."]
    rng.shuffle(facts)
    i = rng.randrange(k)
    kinds = ["city", "pet", "job"] + (["pet_of_city", "job_of_city"] if d >= 2 else [])
    kind = rng.choice(kinds)
    question = {"city": f"Where does {people[i]} live?", "pet": f"What pet does {people[i]} have?",
                "job": f"What does {people[i]} work as?",
                "pet_of_city": f"What pet does the person who lives in {cities[i]} have?",
                "job_of_city": f"What does the person who lives in {cities[i]} work as?"}[kind]
    return "Facts: " + " ".join(facts) + " Question: " + question


_MAKERS = {"arithmetic": _arithmetic, "sorting": _sorting, "qa": _qa}


def generate(task: str, n: int, seed: int = 0, difficulty: int = 1) -> list[dict]:
    """`n` records of one task (module docstring), their answers computed by solve()."""
    _check_task(task, difficulty)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    rng = random.Random(f"{task}/{seed}/{difficulty}")  # one stream per (task, seed, difficulty)
    records = []
    for i in range(n):
        question = _MAKERS[task](rng, difficulty)
        answer = solve(task, question)
        records.append({"prompt": question + "\n", "response": answer + "\n", "answer": answer, "task": task,
                        "provenance": {"generator": "verifiable", "task": task, "seed": seed, "index": i,
                                       "difficulty": difficulty}})
    return records


# ----------------------------------------------------------------------------- the solvers: from the prompt alone


def _evaluate(node) -> int:
    """An integer expression of + - * (and unary minus) only; anything else is refused."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
        a, b = _evaluate(node.left), _evaluate(node.right)
        return a + b if isinstance(node.op, ast.Add) else a - b if isinstance(node.op, ast.Sub) else a * b
    raise ValueError(f"not an integer expression of + - *: {ast.dump(node)[:80]}")


def _solve_arithmetic(prompt: str) -> str:
    m = re.search(r"[-+*\d][-+*\d ]*\d", prompt)
    if m is None:
        raise ValueError(f"no arithmetic expression in {prompt!r}")
    return str(_evaluate(ast.parse(m.group(0), mode="eval")))


def _solve_sorting(prompt: str) -> str:
    m = re.match(r"Sort (alphabetically|in (ascending|descending) order): (.+)$", prompt.strip())
    if m is None:
        raise ValueError(f"not a sorting prompt: {prompt!r}")
    items = [x.strip() for x in m.group(3).split(",")]
    if m.group(1) == "alphabetically":
        return ", ".join(sorted(items))
    return ", ".join(str(v) for v in sorted((int(x) for x in items), reverse=m.group(2) == "descending"))


def _solve_qa(prompt: str) -> str:
    facts, _, question = prompt.strip().removeprefix("Facts: ").partition(" Question: ")
    city, pet, job = {}, {}, {}
    for who, where in re.findall(r"(\w+) lives in (\w+)\.", facts):
        city[who] = where
    for who, what in re.findall(r"(\w+) has an? (\w+)\.", facts):
        pet[who] = what
    for who, what in re.findall(r"(\w+) works as an? (\w+)\.", facts):
        job[who] = what
    by_city = {c: p for p, c in city.items()}
    patterns = ((r"Where does (\w+) live\?", lambda x: city[x]), (r"What pet does (\w+) have\?", lambda x: pet[x]),
                (r"What does (\w+) work as\?", lambda x: job[x]),
                (r"What pet does the person who lives in (\w+) have\?", lambda x: pet[by_city[x]]),
                (r"What does the person who lives in (\w+) work as\?", lambda x: job[by_city[x]]))
    for pattern, answer in patterns:
        m = re.fullmatch(pattern, question.strip())
        if m:
            try:
                return answer(m.group(1))
            except KeyError:
                raise ValueError(f"the facts do not say: {question!r}") from None
    raise ValueError(f"not a question this task asks: {question!r}")


_SOLVERS = {"arithmetic": _solve_arithmetic, "sorting": _solve_sorting, "qa": _solve_qa}


def solve(task: str, prompt: str) -> str:
    """The answer to a task's prompt, recomputed from its text."""
    _check_task(task, 1)
    return _SOLVERS[task](prompt)


_EXPR = r"-?\d+(?: [-+*] -?\d+)*"
_FORMS = (("arithmetic", re.compile("|".join(re.escape(f).replace(re.escape("{}"), _EXPR)
                                             for f in ARITHMETIC_PHRASINGS))),
          ("sorting", re.compile(r"Sort (?:alphabetically|in (?:ascending|descending) order): [^,]+(?:, [^,]+)*")),
          ("qa", re.compile(r"Facts: .+ Question: .+\?")))


def task_of(prompt: str) -> str | None:
    """The task whose template the prompt follows exactly, or None (a model's prompt may follow none)."""
    prompt = prompt.strip()
    return next((task for task, form in _FORMS if form.fullmatch(prompt)), None)


def verify(prompt: str, response: str) -> bool | None:
    """Whether `response` answers `prompt` correctly; None when the prompt is no task's template."""
    task = task_of(prompt)
    if task is None:
        return None
    try:
        return response.strip().split("\n", 1)[0].strip() == solve(task, prompt)
    except (ValueError, SyntaxError, KeyError):
        return False  # a template's form with contents the solver cannot use (facts that do not say)


def check(record: dict, output: str) -> bool:
    """Whether `output`'s first line (stripped) is the answer to the record's prompt."""
    first = output.strip().split("\n", 1)[0].strip()
    return first == solve(record["task"], record["prompt"])
