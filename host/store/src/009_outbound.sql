-- Outbound HTTP (issue 13): the hosts a service's guest may call, when its deployer narrowed
-- the package's `allowed_outbound_hosts` (`service deploy --allow-host`): a JSON array of
-- origins. NULL, as for every service before this migration: the package's own list, which
-- packages before it do not have (no network, as before).

ALTER TABLE services ADD COLUMN allowed_outbound_hosts TEXT;
