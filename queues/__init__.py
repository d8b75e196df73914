"""Queues and operators: queue policy, operator state and callbacks for abandoned emergency calls."""
