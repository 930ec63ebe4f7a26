"""Topic administration: create the topics a process needs, with their partition counts, on any cluster.

Why explicitly: Tansu auto-creates a topic with 4 partitions on any metadata request that names it,
and kafka-python ignores ``allow_auto_create_topics=False``, so the first client to touch a topic
would otherwise fix its partition count. Only the full topic list is read here (a metadata request
that names no topic creates nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import kafka.errors as Errors
from kafka.admin import KafkaAdminClient

log = logging.getLogger(__name__)


def create_missing_topics(admin: KafkaAdminClient, wanted: Mapping[str, int], replication_factor: int = 1) -> list[str]:
    """Create each topic of ``wanted`` ({name: partitions}) that does not exist; returns those created.

    Safe to call from several processes at once: a topic another process created in the meantime
    (``TopicAlreadyExistsError``) counts as present. An existing topic keeps its partition count.
    """
    existing = set(admin.list_topics())
    missing = {name: n for name, n in wanted.items() if name not in existing}
    if not missing:
        return []
    result = admin.create_topics({name: {"num_partitions": n, "replication_factor": replication_factor}
                                  for name, n in missing.items()}, raise_errors=False)
    created = []
    for topic in result["topics"]:
        error = Errors.for_code(topic["error_code"])
        if error is Errors.NoError:
            created.append(topic["name"])
        elif error is not Errors.TopicAlreadyExistsError:
            raise error(f"cannot create topic {topic['name']!r}: {topic.get('error_message') or error.__name__}")
    if created:
        log.info("created topics %s", ", ".join(f"{t} ({missing[t]} partitions)" for t in created))
    return created
