"""Speed: one timing loop shared with train, the read bandwidth, the throughput grid, the goals.

timing          timed epochs through train()'s loop and batch order
bandwidth       the device's read bandwidth, measured beside the epochs
throughput      the n x d x impl x device grid, logged to MLflow experiment 'throughput'
goals           the speed goals as ratios measured side by side
time_to_target  time to lbfgs's test accuracy, against scikit-learn
"""
