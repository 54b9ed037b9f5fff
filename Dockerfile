# neuroloop: the orchestrator, the engines (MuJoCo, Keras, Gymnasium) and training (MPICH),
# everything installed at build time from the pinned dependencies in setup.cfg, so nothing
# is downloaded when a container runs. The services of docker-compose.yml all use this image.
# Containers run as the unprivileged user neuroloop (uid 1000), which can write only its home
# and /app/runs; the installed code is root's and read-only to it.
#
#   docker build -t neuroloop:0.1.0 .
#   docker run --rm neuroloop:0.1.0 neuroloop run simulation_configs/pendulum_pd.json
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONSAFEPATH=1 \
    MPIR_CVAR_CH4_CMA_ENABLE=0

# PYTHONSAFEPATH=1: `python -m neuroloop ...` (how neuroloop starts its engines and its MPI
# ranks) must import the installed package, not the source folder /app/neuroloop that the
# working directory would put first on sys.path: that folder lacks neuroloop.plugins (the
# plugin folders install under it), so engines and `train --workers` failed to import them.

# MPIR_CVAR_CH4_CMA_ENABLE=0: MPI ranks in one container (the train service) pass large
# messages through shared memory, not by cross-memory attach. The mpich wheel (5.0.2) enables
# its CMA single-copy path by default (`mpivars` prints MPIR_CVAR_CH4_CMA_ENABLE=1); it copies
# between ranks with process_vm_readv/process_vm_writev, which Docker's default seccomp
# profile refuses to a container without CAP_SYS_PTRACE, so the first large MPI_Bcast of
# training aborts (in MPIC_Recv). With CMA off, no capability or seccomp change is needed.

RUN groupadd --gid 1000 neuroloop \
    && useradd --uid 1000 --gid neuroloop --create-home --shell /usr/sbin/nologin neuroloop

WORKDIR /app

# The pinned dependencies first, in their own layer: editing the code does not reinstall
# TensorFlow. (mpiexec comes from the mpich wheel; MuJoCo and the Shadow Hand models from
# the mujoco and gymnasium-robotics wheels.)
COPY setup.cfg pyproject.toml ./
RUN python -c "import configparser; c = configparser.ConfigParser(interpolation=None); \
c.read('setup.cfg'); print(c['options']['install_requires'])" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project. The source tree stays in /app: configs name their transceiver files by
# relative path, and the compose services run from here.
COPY . .
RUN pip install --no-deps . \
    && install --directory --owner neuroloop --group neuroloop runs

# From here on, the unprivileged user: the checks below also write its caches (Keras's
# ~/.keras, Matplotlib's font list) into the image, so a container does not rebuild them.
# A named volume mounted at /app/runs starts with this directory's owner, so training can
# write there.
USER neuroloop
RUN python -m neuroloop --help > /dev/null \
    && python -c "import matplotlib.font_manager, keras, neuroloop.plugins.engines"

CMD ["neuroloop", "--help"]
