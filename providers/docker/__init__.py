"""Containers: the Docker provider, its container specs, exec and lab-wide listing."""

from providers.docker.provider import DockerProvider

__all__ = ["DockerProvider"]
