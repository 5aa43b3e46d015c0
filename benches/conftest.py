"""pytest-benchmark suites. Not part of the test run (testpaths = tests); run them with
``make bench-pytest`` (``pytest benches --benchmark-only``). Each group holds fastalign and
its baseline on the same inputs; every benchmark also asserts its result is correct."""
