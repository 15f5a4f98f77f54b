# The stand-in Redis image (xtask/src/images/standin.rs): Debian's Redis 7 on the stand-in base,
# started like the official redis image.
# `{{TAG}}` is replaced by the base image's tag (a hash of its recipe) before the build.
# checkov:skip=CKV_DOCKER_2: Kubernetes ignores HEALTHCHECK, and the docker runtime's kubelet
# runs the manifests' probes instead; a second check here could only disagree with them.
FROM wander/standin-base:{{TAG}}
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER 999:999
WORKDIR /data
VOLUME /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
