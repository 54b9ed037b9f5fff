# neuroloop: the orchestrator, the engines (MuJoCo, Keras, Gymnasium) and training (MPICH),
# everything installed at build time from the pinned dependencies in setup.cfg, so nothing
# is downloaded when a container runs. The services of docker-compose.yml all use this image.
#
#   docker build -t neuroloop:0.1.0 .
#   docker run --rm neuroloop:0.1.0 neuroloop run simulation_configs/pendulum_pd.json
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 \
    TF_CPP_MIN_LOG_LEVEL=2

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
    && python -m neuroloop --help > /dev/null \
    && python -c "import matplotlib.font_manager"

# Root in the container, so that a bind-mounted ./runs (created by Docker as root when it
# does not exist yet) is writable by training.
CMD ["neuroloop", "--help"]
