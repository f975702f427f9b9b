"""ClusterMatch domain library: profiles, criteria, the rule engine, robustness and the classifier.

Pure Python with numpy, pandas and scikit-learn; no web framework, no database.
"""
