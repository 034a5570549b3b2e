"""finsentry: a streaming financial-news sentiment monitor.

The application shell: configuration (:mod:`finsentry.config`), the data path
(:mod:`finsentry.pipeline`), the Kafka daemon (:mod:`finsentry.daemon`), the
local broker (:mod:`finsentry.broker`), the demo and the ``finsentry`` CLI.
The stages live in the top-level packages ``ingest``, ``inference``,
``alerts`` and ``training``.
"""

__version__ = "0.1.0"
