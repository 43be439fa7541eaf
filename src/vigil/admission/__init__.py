"""The admission webhook (`vigil admission`): one per cluster, it admits, warns or denies pods and pod templates
by the enforcement policy, from a local cache the service keeps current."""
