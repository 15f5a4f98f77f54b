# The stand-in PostgreSQL image (xtask/src/images/standin.rs): Debian's PostgreSQL 15 on the
# stand-in base, with the official postgres image's environment contract.
# `{{TAG}}` is replaced by the base image's tag (a hash of its recipe) before the build.
# checkov:skip=CKV_DOCKER_2: Kubernetes ignores HEALTHCHECK, and the docker runtime's kubelet
# runs the manifests' probes instead; a second check here could only disagree with them.
FROM wander/standin-base:{{TAG}}
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER 999:999
WORKDIR /var/lib/postgresql
VOLUME /var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
