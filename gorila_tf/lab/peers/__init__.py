"""Standalone peer DQN throughput benchmarks (TF-Agents, Stable-Baselines3)."""
