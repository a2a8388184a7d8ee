"""Statistics of the playbook: plain functions on arrays and frames that return typed results.

See docs/statistics.md for each method's assumption, reference and measured coverage.
"""
from playbook.stats.cuped import CupedResult, cuped_mean_difference, cuped_ratio_difference
from playbook.stats.did import difference_in_differences, event_study, pre_trend_check
from playbook.stats.funnel import funnel_limits, funnel_table, overdispersion
from playbook.stats.lag import (
    choose_follow_up_days,
    cox_hazard_ratio,
    kaplan_meier_by_arm,
    log_rank_test,
    return_within_k_difference,
)
from playbook.stats.means import mean_difference, mean_relative_difference
from playbook.stats.power import minimum_detectable_effect, weeks_needed
from playbook.stats.proportions import proportion_difference, proportion_interval, proportion_relative_lift
from playbook.stats.ratio import (
    naive_line_level_proportion_difference,
    ratio_difference,
    ratio_metric,
    ratio_relative_difference,
)
from playbook.stats.results import Estimate
from playbook.stats.shrinkage import beta_binomial_shrinkage, fit_beta_prior
from playbook.stats.srm import SrmResult, sample_ratio_mismatch
from playbook.stats.standardized import excess_p_value, standardized_funnel

__all__ = [
    "CupedResult", "Estimate", "SrmResult", "beta_binomial_shrinkage", "choose_follow_up_days",
    "cox_hazard_ratio", "cuped_mean_difference", "cuped_ratio_difference", "difference_in_differences",
    "event_study", "fit_beta_prior", "funnel_limits", "funnel_table", "kaplan_meier_by_arm", "log_rank_test",
    "mean_difference", "mean_relative_difference", "minimum_detectable_effect",
    "naive_line_level_proportion_difference", "overdispersion", "pre_trend_check", "proportion_difference",
    "proportion_interval", "proportion_relative_lift", "ratio_difference", "ratio_metric",
    "ratio_relative_difference", "return_within_k_difference", "sample_ratio_mismatch", "standardized_funnel", "excess_p_value",
    "weeks_needed",
]
