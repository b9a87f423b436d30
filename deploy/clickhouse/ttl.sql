-- Retention, for ClickHouse >= 19.6 (18.16 has no TTL clause: drop old monthly partitions
-- instead, docs/deployment.md). 400 days: a year of history plus the month being compared.
ALTER TABLE ekuwatch.sessions MODIFY TTL ts + INTERVAL 400 DAY;
