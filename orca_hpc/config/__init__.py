"""Configuration: site configs (``site_configs/*.toml`` -> ``SiteConfig``) and the campaign.

A site says how a cluster is used (partition, ORCA path, resources, limits, recovery settings); a
campaign (``orca-hpc.toml``) names its site and may override any site value. Every default is written
once, in ``config.site``. Errors name the file and every problem in it.
"""
