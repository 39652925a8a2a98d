#!/usr/bin/env python3
"""Prints the slowest tests of a cargo nextest run from its JUnit report, so the next cut
of `make test` is chosen from numbers.
    test-times.py JUNIT_XML [COUNT]     default: the 15 slowest"""
import sys
import xml.etree.ElementTree as ET

path = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 15
cases = []
for case in ET.parse(path).getroot().iter("testcase"):
    binary = case.get("classname", "").split("::")[-1]
    cases.append((float(case.get("time", "0")), f"{binary} {case.get('name')}"))
cases.sort(reverse=True)
total = sum(seconds for seconds, _ in cases)
print(f"{len(cases)} tests, {total:.1f} s of test time; the {min(count, len(cases))} slowest:")
for seconds, name in cases[:count]:
    print(f"  {seconds:7.1f} s  {name}")
