"""tinyllm.data.synthetic: data you make rather than collect.

    duplicates.py   a corpus with planted near-duplicates (edits, insertions, deletions, reorderings):
                    the test bed of deduplication's precision and recall

Import the module you need; nothing is imported here.
"""
