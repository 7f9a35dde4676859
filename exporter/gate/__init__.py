"""`callmeter-exporter gate`, the CI/CD quality gate; the only code that sends the API's writes.

    options   the command line, checked once          api     the client's two writes; finding targets
    wait      pacing the looks, progress               judge   gates, exit codes, the Verdict
    flow      one gate from start to verdict           report  table, JUnit XML, Markdown, JSON
    push      the Pushgateway                          command main(): all of it, and the exit code
"""

from .command import main

__all__ = ["main"]
