set encoding utf8
set terminal pngcairo noenhanced size 1024,640
set output 'energy_deadline.png'
set title 'ImageNet images.tar: energy per sample over the period against the budget (model of exynos5422_a15.json)'
set xlabel 'budget / the default budget (the plain network''s time at f_max)'
set ylabel 'energy per sample (mJ)'
set grid
set key outside right top box
plot 'energy_deadline.dat' index 0 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'full_fmax', \
     '' index 1 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'max_prob_fmax', \
     '' index 2 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'max_prob_dvfs', \
     '' index 3 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'predictive_fmax', \
     '' index 4 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'predictive_dvfs', \
     '' index 5 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'predictive_dvfs_reference', \
     '' index 6 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'predictive_perfect_forecast', \
     '' index 7 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'predictive_first_head_forecast'
