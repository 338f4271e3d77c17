# The two commands of the README. Each sets up (or reuses) .venv and the colcon build first.
# ARGS=... passes options through (to bringup for demo, to pytest for test).
.PHONY: demo test setup clean

demo:  ## Run the embedded default: simulated bimanual robot + shipped checkpoint, in-process.
	bash scripts/run_demo.sh $(ARGS)

test:  ## Lint and run every test (what CI runs).
	bash scripts/run_tests.sh $(ARGS)

setup:  ## Only create/update .venv and build the ROS packages.
	bash scripts/setup_env.sh

clean:
	rm -rf build install log
