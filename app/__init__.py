"""ClusterMatch web service: the composition root joining `scoring` and `models`."""
