"""The parts every audit is built from, each taking plain values (orders, sample counts, load
patterns, salts, thresholds, roles), never another audit's objects:

| module     | what                                                                      |
|------------|---------------------------------------------------------------------------|
| `phases`   | the salted warm-up, one-at-a-time load, the checks that make a run INVALID |
| `designs`  | sequential, R A A R, alternating block pairs, extra rounds, pooling        |
| `ratio`    | the block/pair bootstrap of a score ratio, looks and alpha split          |
| `upstream` | MLPerf's threshold rules and verify_performance.txt's text                |
| `results`  | the fields every audit's result starts from                               |
| `accuracy_log` | LoadGen's mlperf_log_accuracy.json, written and read back              |
"""
