"""tinyllm.data.synthetic: data you make rather than collect.

    stories.py        the built-in "stories" corpus: a small seeded grammar, with knobs for its
                      vocabulary and length (load_text("stories") is generate_stories())
    verifiable.py     templated tasks whose answers a program checks: arithmetic, sorting,
                      questions about generated facts
    self_instruct.py  a trained model writes new prompt/response records from a few of its own
                      (Self-Instruct), filtered, deduplicated, each with its provenance; and
                      plain samples of a model as synthetic pretraining text
    duplicates.py     a corpus with planted near-duplicates (edits, insertions, deletions,
                      reorderings): the test bed of deduplication's precision and recall

`tinyllm synth KIND --n N --out FILE.jsonl --seed S` writes any of them as JSONL.
Import the module you need; nothing is imported here.
"""
