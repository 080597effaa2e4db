"""The supervisor process: spawns and watches the workers, applies the restart policy,
publishes its record and the service's events."""
